// The submit form.
import { h, $, sleep } from './dom.js';
import { ApiError, api, fetchQueues, reportError } from './api.js';

// ---- submitting -------------------------------------------------------

export function submitView() {
  const queueBox = h('span', {}, h('input', { id: 'submit-queue', name: 'queue', required: true }));
  const config = h('textarea', { id: 'submit-config', name: 'config', rows: '8', spellcheck: 'false' });
  config.value = '{"executor": "sleep", "seconds": 5}';
  const number = (id, label, hint, attrs = {}) => h('label', { for: id }, label,
    h('input', { id, name: id, type: 'number', ...attrs }), h('small', { class: 'muted' }, hint));
  const errorBox = h('div', { id: 'submit-error', class: 'error', role: 'alert', hidden: true });
  const form = h('form', { id: 'submit-form', class: 'panel', novalidate: true },
    h('label', { for: 'submit-queue' }, 'Queue', queueBox),
    h('label', { for: 'submit-config' }, 'Config (JSON; the executor and its members)', config),
    h('div', { class: 'numbers' },
      number('submit-priority', 'Priority', 'higher runs first'),
      number('submit-delay', 'Delay (s)', 'start no sooner', { min: '0', step: 'any' }),
      number('submit-timeout', 'Timeout (s)', 'per attempt', { min: '1' }),
      number('submit-max-attempts', 'Max attempts', 'the queue\'s default if empty', { min: '1' })),
    errorBox,
    h('div', { class: 'buttons' }, h('button', { type: 'submit', class: 'primary', id: 'submit-button' }, 'Submit')));

  const showError = (text, field) => {
    errorBox.replaceChildren(h('strong', {}, 'Refused: '), text);
    if (field) errorBox.append(h('span', { class: 'muted' }, ` (field: ${field})`));
    errorBox.hidden = false;
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    const queue = $('submit-queue').value.trim();
    const configText = config.value.trim();
    try {
      JSON.parse(configText);
    } catch (e) {
      showError(`config: not valid JSON (${e.message})`, 'config');
      return;
    }
    // The config goes as typed: its text (member order included) is what
    // the job's id is derived from.
    let body = `{"queue":${JSON.stringify(queue)},"config":${configText}`;
    const fields = [['submit-priority', 'priority'], ['submit-delay', 'delay_seconds'],
      ['submit-timeout', 'timeout_seconds'], ['submit-max-attempts', 'max_attempts']];
    for (const [id, member] of fields) {
      const raw = $(id).value.trim();
      if (raw === '') continue;
      const value = Number(raw);
      if (!Number.isFinite(value)) {
        showError(`${member}: '${raw}' is not a number`, member);
        return;
      }
      body += `,${JSON.stringify(member)}:${JSON.stringify(value)}`;
    }
    body += '}';
    $('submit-button').disabled = true;
    try {
      const job = await api('POST', '/jobs', { body });
      location.hash = `#/jobs/${job.id}`;
    } catch (e) {
      if (e instanceof ApiError && e.status !== 403) showError(e.doc.detail || e.message, e.doc.field);
      else if (e instanceof ApiError) showError(e.message);
      else reportError(e);
    } finally {
      $('submit-button').disabled = false;
    }
  });

  $('view').replaceChildren(h('section', { id: 'submit-view' }, h('h1', {}, 'Submit a job'), form));
  // The queues this server runs, when it says.
  fetchQueues().then((doc) => {
    const served = doc ? doc.queues.filter((q) => q.served).map((q) => q.queue) : [];
    if (!served.length || !form.isConnected) return;
    const typed = $('submit-queue').value;
    const select = h('select', { id: 'submit-queue', name: 'queue' },
      served.map((q) => h('option', { value: q, selected: q === typed }, q)));
    queueBox.replaceChildren(select);
  }).catch(reportError).finally(() => {
    // The queue field is what it will stay (tests wait for this).
    form.dataset.ready = 'true';
  });
  return { stop() {} };
}

// A job's page: its state, its live log (followed with fetch), its files
// and the actions on it.
import { ENDED, h, $, sleep, timeFull, size, statusBadge, progressOf, notice, setNextNotice } from './dom.js';
import { ApiError, hasToken, errorDoc, api, poller, reportError, confirmAction } from './api.js';

// ---- a job's log ------------------------------------------------------

const DROPPED = /\[\.\.\. (\d+) bytes dropped \.\.\.\]\n/g;

// Follow the log with fetch() (an EventSource cannot send the token):
// the streamed answer of ?follow=1 from the offset counted so far, again
// from there after a dropped connection, until a plain read says the log
// has ended. Offsets count the log's bytes: a "[... N bytes dropped ...]"
// line stands for N bytes it does not have.
function followLog(id, pre, state) {
  const encoder = new TextEncoder();
  let offset = 0;
  let stopped = false;
  let controller = null;

  const append = (text) => {
    if (!text) return;
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(text);
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  };
  const count = (bytes, text) => {
    offset += bytes;
    for (const m of text.matchAll(DROPPED)) offset += Number(m[1]) - encoder.encode(m[0]).length;
  };

  async function readRest() {
    for (;;) {
      const response = await api('GET', `/jobs/${id}/log?offset=${offset}`, { raw: true });
      if (!response.ok) throw new ApiError(response.status, await errorDoc(response));
      const text = await response.text();
      append(text);
      const next = Number(response.headers.get('X-Log-Next'));
      const moved = Number.isFinite(next) && next > offset;
      if (Number.isFinite(next)) offset = next;
      if (response.headers.get('X-Log-Ended') === 'true') return true;
      if (!moved) return false;
    }
  }

  async function run() {
    let failures = 0;
    while (!stopped) {
      controller = new AbortController();
      try {
        const response = await api('GET', `/jobs/${id}/log?follow=1&offset=${offset}`,
          { raw: true, signal: controller.signal });
        if (!response.ok) throw new ApiError(response.status, await errorDoc(response));
        const start = Number(response.headers.get('X-Log-Start'));
        if (Number.isFinite(start) && response.headers.has('X-Log-Start')) offset = start;
        state.textContent = 'following';
        state.className = 'log-state following';
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          const text = decoder.decode(value, { stream: true });
          count(value.length, text);
          append(text);
          failures = 0;
        }
        append(decoder.decode());
        // The stream ends with the job, or when the server stops: a plain
        // read tells which, and brings what came after.
        if (await readRest()) {
          state.textContent = 'ended';
          state.className = 'log-state ended';
          return;
        }
      } catch (e) {
        if (stopped) return;
        if (e instanceof ApiError && e.status === 404) {
          state.textContent = 'no log: the job is gone';
          return;
        }
        failures++;
        state.textContent = `connection lost; resuming at byte ${offset}`;
        state.className = 'log-state lost';
      }
      await sleep(Math.min(1000 * failures, 5000) || 500);
    }
  }

  run();
  return {
    stop() {
      stopped = true;
      if (controller) controller.abort();
    },
  };
}

// ---- downloads --------------------------------------------------------

// Without a token a plain link does it; with one, the header cannot ride
// on a link: fetch the file into a Blob and save that.
function downloadLink(id, name) {
  const url = `/jobs/${id}/files/${encodeURIComponent(name)}`;
  return h('a', {
    href: url, download: name, class: 'download', 'data-name': name,
    onclick: async (event) => {
      if (!hasToken()) return;
      event.preventDefault();
      try {
        const response = await api('GET', url, { raw: true });
        if (!response.ok) throw new ApiError(response.status, await errorDoc(response));
        const blob = await response.blob();
        const objectUrl = URL.createObjectURL(blob);
        const save = h('a', { href: objectUrl, download: name, hidden: true });
        document.body.append(save);
        save.click();
        save.remove();
        setTimeout(() => URL.revokeObjectURL(objectUrl), 60000);
      } catch (e) {
        reportError(e);
      }
    },
  }, 'download');
}

// ---- the job page -----------------------------------------------------

export function jobView(id) {
  const title = h('h1', {}, 'Job ', h('code', {}, id));
  const status = h('span', { id: 'job-status' });
  const facts = h('dl', { id: 'job-facts', class: 'facts' });
  const progress = h('div', { id: 'job-progress' });
  const errorBox = h('pre', { id: 'job-error', class: 'error-text', hidden: true });
  const noError = h('div', { class: 'muted' }, 'none');
  const files = h('tbody', {});
  const filesEmpty = h('p', { class: 'muted', id: 'files-empty' }, 'No files yet.');
  const logPre = h('pre', { id: 'log', class: 'log', tabindex: '0' });
  const logState = h('span', { id: 'log-state', class: 'log-state' }, 'connecting');
  const buttons = {
    cancel: h('button', { id: 'action-cancel', type: 'button', class: 'danger' }, 'Cancel'),
    expire: h('button', { id: 'action-expire', type: 'button' }, 'Expire'),
    delete: h('button', { id: 'action-delete', type: 'button', class: 'danger' }, 'Delete'),
  };
  let job = null;
  let filesOf = null; // the status whose files are shown
  let gone = false;

  const fact = (name, value, key) => [h('dt', {}, name), h('dd', { 'data-fact': key }, value)];

  function render() {
    status.replaceChildren(statusBadge(job.status, job.cancel_requested));
    facts.replaceChildren(...[
      fact('Queue', job.queue ?? '–', 'queue'),
      fact('Status', statusBadge(job.status, job.cancel_requested), 'status'),
      fact('Created', timeFull(job.created), 'created'),
      fact('Started', timeFull(job.grabbed), 'started'),
      fact('Finished', timeFull(job.finished), 'finished'),
      job.next_run && !ENDED.has(job.status) ? fact('Next run', timeFull(job.next_run), 'next_run') : null,
      fact('Attempts', `${job.attempts} of ${job.max_attempts}`, 'attempts'),
      fact('Priority', String(job.priority), 'priority'),
      fact('Timeout', job.timeout_seconds ? `${job.timeout_seconds} s` : 'none', 'timeout'),
      job.queue_position !== null && job.queue_position !== undefined
        ? fact('Place in queue', String(job.queue_position), 'queue_position') : null,
    ].filter(Boolean).flat());
    progress.replaceChildren(progressOf(job) || h('span', { class: 'muted' }, 'no progress reported'));
    errorBox.textContent = job.last_error || '';
    errorBox.hidden = !job.last_error;
    noError.hidden = Boolean(job.last_error);
    const running = job.status === 'in-progress';
    buttons.cancel.disabled = ENDED.has(job.status);
    buttons.expire.disabled = running || job.status === 'expired';
    buttons.delete.disabled = running;
  }

  async function loadFiles() {
    const response = await api('GET', `/jobs/${id}/files`, { raw: true });
    if (response.status === 404) {
      await response.body?.cancel();
      files.replaceChildren();
      filesEmpty.hidden = false;
      return;
    }
    if (!response.ok) throw new ApiError(response.status, await errorDoc(response));
    const doc = await response.json();
    files.replaceChildren(...doc.files.map((f) => h('tr', { 'data-name': f.name },
      h('td', { class: 'name' }, f.name),
      h('td', { class: 'num', title: `${f.size} bytes` }, size(f.size)),
      h('td', {}, downloadLink(id, f.name)))));
    filesEmpty.hidden = doc.files.length > 0;
  }

  async function refresh() {
    if (gone) return;
    try {
      job = await api('GET', `/jobs/${id}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        gone = true;
        notice(`Job ${id} does not exist (any more).`, 'error');
        return;
      }
      throw e;
    }
    render();
    // Files appear when the job ends (and go when it expires).
    if (filesOf !== job.status) {
      await loadFiles();
      filesOf = job.status;
    }
  }

  async function act(action) {
    const what = {
      cancel: ['Cancel this job?', `Job ${id} stops (a running job within about a second) and is not retried. Its record stays.`, 'Cancel the job', 'POST', 'cancel'],
      expire: ['Expire this job?', `The files of job ${id} are removed; its record stays and it can be submitted again.`, 'Expire the job', 'POST', 'expire'],
      delete: ['Delete this job?', `Job ${id}, its record and its files are removed for good.`, 'Delete the job', 'DELETE', ''],
    }[action];
    if (!await confirmAction(what[0], what[1], what[2])) return;
    try {
      await api(what[3], `/jobs/${id}${what[4] ? `/${what[4]}` : ''}`);
      if (action === 'delete') {
        setNextNotice(`Job ${id} was deleted.`);
        location.hash = '#/';
        return;
      }
      notice(action === 'cancel' ? `Cancel requested for job ${id}.` : `Job ${id} expired.`);
      refresher.now();
    } catch (e) {
      reportError(e);
    }
  }
  for (const [action, button] of Object.entries(buttons)) button.addEventListener('click', () => act(action));

  $('view').replaceChildren(h('section', { id: 'job-view' },
    h('p', {}, h('a', { href: '#/' }, '← all jobs')),
    h('div', { class: 'title-row' }, title, status),
    h('div', { class: 'columns' },
      h('section', { class: 'panel' }, h('h2', {}, 'State'), facts,
        h('h3', {}, 'Progress'), progress, h('h3', {}, 'Last error'), errorBox, noError,
        h('div', { class: 'actions' }, Object.values(buttons))),
      h('section', { class: 'panel' }, h('h2', {}, 'Files'),
        h('table', { id: 'files-table', class: 'grid' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'),
            h('th', { scope: 'col', class: 'num' }, 'Size'), h('th', { scope: 'col' }, ''))), files),
        filesEmpty)),
    h('section', { class: 'panel' },
      h('div', { class: 'title-row' }, h('h2', {}, 'Log'), logState), logPre)));
  const refresher = poller(refresh);
  const follower = followLog(id, logPre, logState);
  return {
    stop() {
      refresher.stop();
      follower.stop();
    },
  };
}

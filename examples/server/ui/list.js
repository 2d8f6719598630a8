// The job list: filters, paging, counts per status and the queue overview.
import { PAGE_SIZES, DEFAULT_PAGE_SIZE, STATUSES, h, $, timeCell, size, statusBadge, progressOf } from './dom.js';
import { api, fetchQueues, poller } from './api.js';

// ---- the job list -----------------------------------------------------

export function parseListHash(hash) {
  const query = new URLSearchParams(hash.replace(/^#\/?\??/, ''));
  const statuses = (query.get('status') || '').split(',').filter((s) => STATUSES.includes(s));
  const limit = Number(query.get('limit'));
  return {
    statuses: new Set(statuses),
    queue: query.get('queue') || '',
    limit: PAGE_SIZES.includes(limit) ? limit : DEFAULT_PAGE_SIZE,
  };
}

function listHash(filters) {
  const query = new URLSearchParams();
  if (filters.statuses.size) query.set('status', STATUSES.filter((s) => filters.statuses.has(s)).join(','));
  if (filters.queue) query.set('queue', filters.queue);
  if (filters.limit !== DEFAULT_PAGE_SIZE) query.set('limit', String(filters.limit));
  const text = query.toString();
  return text ? `#/?${text}` : '#/';
}

function overviewTable(doc) {
  if (!doc.queues.length) return h('p', { class: 'muted' }, 'No queue has jobs yet.');
  // The queues this server runs, and any other with something to see: a
  // database shared by many services may hold hundreds of idle queues.
  const busy = (q) => (q.counts && (q.counts.queued || q.counts['in-progress'])) || q.failed_last_hour;
  const shown = doc.queues.filter((q) => q.served || busy(q));
  const idle = doc.queues.length - shown.length;
  const row = (name, served, counts, failedHour, cls) => h('tr', { class: cls, 'data-queue': name },
    h('th', { scope: 'row' }, cls ? name
      : h('a', { href: listHash({ statuses: new Set(), queue: name, limit: DEFAULT_PAGE_SIZE }) }, name)),
    h('td', {}, served),
    h('td', { class: 'num count-queued' }, counts.queued ?? 0),
    h('td', { class: 'num count-running' }, counts['in-progress'] ?? 0),
    h('td', { class: 'num count-failed-hour' }, failedHour ?? 0));
  return h('table', { id: 'overview-table', class: 'grid' },
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Queue'), h('th', { scope: 'col' }, 'Served here'),
      h('th', { scope: 'col', class: 'num' }, 'Queued'),
      h('th', { scope: 'col', class: 'num' }, 'Running'),
      h('th', { scope: 'col', class: 'num' }, 'Failed (last hour)'))),
    h('tbody', {}, shown.map((q) => row(q.queue, q.served ? 'yes' : 'no', q.counts || {},
      q.failed_last_hour))),
    h('tfoot', {},
      idle ? h('tr', { class: 'idle' }, h('td', { colspan: '5', class: 'muted', id: 'overview-idle' },
        `${idle} other ${idle === 1 ? 'queue has' : 'queues have'} nothing queued, running or failed in the last hour.`))
        : null,
      row('all', '', doc.totals || {}, doc.failed_last_hour, 'totals')));
}

function jobRow(job) {
  return h('tr', { 'data-id': job.id, 'data-status': job.status },
    h('td', { class: 'id' }, h('a', { href: `#/jobs/${job.id}` }, job.id)),
    h('td', { class: 'queue' }, job.queue ?? ''),
    h('td', { class: 'state' }, statusBadge(job.status, job.cancel_requested)),
    h('td', { class: 'progress-cell' }, progressOf(job)),
    h('td', { class: 'num' }, `${job.attempts}/${job.max_attempts}`),
    h('td', { class: 'num' }, job.priority),
    h('td', {}, timeCell(job.created)),
    h('td', {}, timeCell(job.finished)));
}

export function listView(filters) {
  let cursor = null; // the page shown; null: the first
  const previous = []; // the cursors of the pages before it
  let queues = null; // the last GET /queues; null when unknown

  const chips = h('div', { id: 'status-filter', class: 'chips', role: 'group', 'aria-label': 'Status' });
  const queueInput = h('input', { id: 'filter-queue', type: 'search', list: 'queue-names',
    placeholder: 'all queues', value: filters.queue, 'aria-label': 'Queue' });
  const queueNames = h('datalist', { id: 'queue-names' });
  const pageSize = h('select', { id: 'page-size', 'aria-label': 'Jobs per page' },
    PAGE_SIZES.map((n) => h('option', { value: String(n), selected: n === filters.limit }, `${n} per page`)));
  const overview = h('div', { id: 'overview' });
  const tbody = h('tbody', {});
  const empty = h('p', { id: 'jobs-empty', class: 'muted', hidden: true }, 'No jobs match.');
  const prevButton = h('button', { id: 'page-prev', type: 'button' }, '← Previous');
  const nextButton = h('button', { id: 'page-next', type: 'button' }, 'Next →');
  const pageLabel = h('span', { id: 'page-number', class: 'muted' });
  let nextCursor = null;

  const apply = () => {
    const target = listHash(filters);
    if (location.hash !== target) location.hash = target; // route() starts a new view
    else refresher.now();
  };
  queueInput.addEventListener('change', () => {
    filters.queue = queueInput.value.trim();
    apply();
  });
  pageSize.addEventListener('change', () => {
    filters.limit = Number(pageSize.value);
    apply();
  });
  prevButton.addEventListener('click', () => {
    cursor = previous.pop() ?? null;
    refresher.now();
  });
  nextButton.addEventListener('click', () => {
    if (!nextCursor) return;
    previous.push(cursor);
    cursor = nextCursor;
    refresher.now();
  });

  function renderChips() {
    const counts = !queues ? null
      : filters.queue ? (queues.queues.find((q) => q.queue === filters.queue) || {}).counts || {}
        : queues.totals || {};
    const total = counts ? STATUSES.reduce((sum, s) => sum + (counts[s] || 0), 0) : null;
    const chip = (label, status, count) => h('button', {
      type: 'button', class: 'chip', 'data-status': status || 'all',
      'aria-pressed': String(status ? filters.statuses.has(status) : filters.statuses.size === 0),
      onclick: () => {
        if (!status) filters.statuses.clear();
        else if (filters.statuses.has(status)) filters.statuses.delete(status);
        else filters.statuses.add(status);
        apply();
      },
    }, label, count === null ? null : h('span', { class: 'count' }, String(count)));
    chips.replaceChildren(chip('all', null, total),
      ...STATUSES.map((s) => chip(s, s, counts ? counts[s] || 0 : null)));
  }

  function renderOverview() {
    if (!queues) {
      overview.replaceChildren(h('p', { class: 'muted', id: 'overview-missing' },
        'Counts per queue are not available from this server (no GET /queues).'));
      return;
    }
    overview.replaceChildren(overviewTable(queues));
    queueNames.replaceChildren(...queues.queues.map((q) => h('option', { value: q.queue })));
  }

  async function refresh() {
    const query = new URLSearchParams({ limit: String(filters.limit) });
    if (filters.statuses.size) query.set('status', STATUSES.filter((s) => filters.statuses.has(s)).join(','));
    if (filters.queue) query.set('queue', filters.queue);
    if (cursor) query.set('cursor', cursor);
    const [page, counts] = await Promise.all([api('GET', `/jobs?${query}`), fetchQueues()]);
    queues = counts;
    renderOverview();
    renderChips();
    tbody.replaceChildren(...page.jobs.map(jobRow));
    empty.hidden = page.jobs.length > 0;
    nextCursor = page.next_cursor || null;
    nextButton.disabled = !nextCursor;
    prevButton.disabled = previous.length === 0;
    pageLabel.textContent = `page ${previous.length + 1}`;
  }

  renderChips();
  $('view').replaceChildren(h('section', { id: 'list-view' },
    h('h1', {}, 'Jobs'),
    h('section', { class: 'panel', 'aria-labelledby': 'overview-title' },
      h('h2', { id: 'overview-title' }, 'Queues'), overview),
    h('div', { class: 'filters' }, chips, h('span', { class: 'spacer' }), queueInput, queueNames, pageSize),
    h('table', { id: 'jobs-table', class: 'grid' },
      h('thead', {}, h('tr', {}, ['Job', 'Queue', 'Status', 'Progress', 'Attempts', 'Priority',
        'Created', 'Finished'].map((t) => h('th', { scope: 'col' }, t)))),
      tbody),
    empty,
    h('div', { class: 'pager' }, prevButton, pageLabel, nextButton)));
  const refresher = poller(refresh);
  return { stop: () => refresher.stop() };
}

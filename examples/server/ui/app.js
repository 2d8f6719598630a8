// The jobs dashboard (docs/dashboard.adoc): plain JavaScript over the
// server's HTTP API (docs/http-api.adoc). Everything a job brings (its log,
// its error, its files' names, a server's error detail) is user data: it
// reaches the page only as text (textContent, text nodes, attribute values),
// never as HTML, and the Content-Security-Policy forbids inline script on
// top of that.
'use strict';

(() => {
  const TOKEN_KEY = 'acp-dashboard-token';
  const REFRESH_MS = 2500;
  const PAGE_SIZES = [5, 10, 20, 50, 100];
  const DEFAULT_PAGE_SIZE = 20;
  const STATUSES = ['queued', 'in-progress', 'complete', 'failed', 'expired', 'cancelled'];
  const ENDED = new Set(['complete', 'failed', 'expired', 'cancelled']);
  const JOB_ID = /^[0-9a-f]{32}$/;

  // ---- DOM helpers ------------------------------------------------------

  // An element with attributes and children; strings become text nodes.
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else if (key === 'value' || key === 'checked' || key === 'disabled') node[key] = value;
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // ---- formatting -------------------------------------------------------

  function absTime(iso) {
    if (!iso) return '';
    return iso.replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC');
  }

  function relTime(iso, now = Date.now()) {
    if (!iso) return '';
    const seconds = Math.round((Date.parse(iso) - now) / 1000);
    const abs = Math.abs(seconds);
    let text;
    if (abs < 2) return 'just now';
    if (abs < 90) text = `${abs} s`;
    else if (abs < 90 * 60) text = `${Math.round(abs / 60)} min`;
    else if (abs < 36 * 3600) text = `${Math.round(abs / 3600)} h`;
    else text = `${Math.round(abs / 86400)} d`;
    return seconds < 0 ? `${text} ago` : `in ${text}`;
  }

  // A time as "3 s ago" with the absolute time on hover.
  function timeCell(iso) {
    if (!iso) return h('span', { class: 'muted' }, '–');
    return h('time', { datetime: iso, title: absTime(iso) }, relTime(iso));
  }

  // Both, for the job page.
  function timeFull(iso) {
    if (!iso) return h('span', { class: 'muted' }, '–');
    return h('span', {}, h('time', { datetime: iso }, absTime(iso)), ' ',
      h('span', { class: 'muted' }, `(${relTime(iso)})`));
  }

  function size(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    const units = ['KiB', 'MiB', 'GiB', 'TiB'];
    let value = bytes;
    let unit = -1;
    do {
      value /= 1024;
      unit++;
    } while (value >= 1024 && unit < units.length - 1);
    return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
  }

  function statusBadge(status, cancelRequested) {
    return h('span', { class: `status status-${status}` }, status,
      cancelRequested && !ENDED.has(status) ? ' (cancelling)' : null);
  }

  function progressOf(job) {
    const p = job.progress;
    if (!p) return null;
    const bar = h('progress', { max: p.total || 1 });
    if (p.total) bar.value = Math.min(p.done, p.total);
    else bar.removeAttribute('value'); // unknown total: indeterminate
    const label = p.total ? `${p.done} of ${p.total}` : `${p.done}`;
    return h('span', { class: 'progress' }, bar, ' ', label, p.text ? ` · ${p.text}` : null);
  }

  // ---- notices ----------------------------------------------------------

  function notice(text, kind = 'info') {
    $('notice-text').textContent = text;
    $('notice').className = `notice-${kind}`;
    $('notice').hidden = false;
  }

  function clearNotice() {
    $('notice').hidden = true;
  }

  // A notice for the view that the next hash change opens.
  let nextNotice = null;

  // ---- the API, with the token ------------------------------------------

  class ApiError extends Error {
    constructor(status, doc, message) {
      super(message || (doc && doc.detail) || `HTTP ${status}`);
      this.status = status;
      this.doc = doc || {};
    }
  }

  let token = sessionStorage.getItem(TOKEN_KEY);
  let tokenPrompt = null;

  function showTokenState() {
    $('forget-token').hidden = !token;
  }

  // Ask once, whatever number of requests are waiting for it.
  function askToken(message) {
    if (tokenPrompt) return tokenPrompt;
    tokenPrompt = new Promise((resolve) => {
      const dialog = $('token-dialog');
      $('token-error').textContent = message || '';
      $('token-error').hidden = !message;
      $('token-input').value = '';
      const done = (event) => {
        event.preventDefault();
        const value = $('token-input').value.trim();
        if (!value) return;
        token = value;
        sessionStorage.setItem(TOKEN_KEY, token);
        $('token-input').value = '';
        $('token-form').removeEventListener('submit', done);
        dialog.close();
        tokenPrompt = null;
        showTokenState();
        resolve();
      };
      $('token-form').addEventListener('submit', done);
      dialog.showModal();
      $('token-input').focus();
    });
    return tokenPrompt;
  }

  function forgetToken() {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
  }

  async function errorDoc(response) {
    try {
      return await response.json();
    } catch {
      return {};
    }
  }

  // One API call. A 401 asks for a token and tries again; a 403 is an
  // ApiError saying that the token may only read. With raw, the response
  // (any other status) goes back to the caller as it is.
  async function api(method, path, options = {}) {
    for (;;) {
      const headers = {};
      const sent = token;
      if (sent) headers.Authorization = `Bearer ${sent}`;
      const init = { method, headers, cache: 'no-store', signal: options.signal };
      if (options.body !== undefined) {
        headers['Content-Type'] = 'application/json';
        init.body = options.body;
      }
      const response = await fetch(path, init);
      if (response.status === 401) {
        await response.body?.cancel();
        if (sent && sent === token) {
          forgetToken();
          await askToken('The server refused that token: enter another one.');
        } else if (!token) {
          await askToken(null);
        } // else a token came while this request was out: try again with it
        continue;
      }
      if (response.status === 403) {
        const doc = await errorDoc(response);
        throw new ApiError(403, doc,
          `This token may only read${doc.detail ? `: ${doc.detail}` : ''}.`);
      }
      if (options.raw) return response;
      if (!response.ok) throw new ApiError(response.status, await errorDoc(response));
      if (response.status === 204) return null;
      return response.json();
    }
  }

  // GET /queues, or null where the server has no such route (404).
  async function fetchQueues() {
    const response = await api('GET', '/queues', { raw: true });
    if (response.status === 404) {
      await response.body?.cancel();
      return null;
    }
    if (!response.ok) throw new ApiError(response.status, await errorDoc(response));
    return response.json();
  }

  // ---- auto refresh -----------------------------------------------------

  let refreshers = 0;

  function showRefreshState() {
    const text = refreshers === 0 ? ''
      : document.hidden ? 'auto refresh paused (tab hidden)'
        : `auto refresh every ${REFRESH_MS / 1000} s`;
    $('refresh-state').textContent = text;
  }

  // Run fn now and every REFRESH_MS after it finished, while the tab is
  // visible; a hidden tab asks nothing until it is shown again.
  function poller(fn) {
    let timer = null;
    let busy = false;
    let again = false; // asked for while busy: once more right after
    let stopped = false;
    const tick = async () => {
      timer = null;
      if (stopped || document.hidden) return;
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        await fn();
      } catch (e) {
        reportError(e);
      } finally {
        busy = false;
      }
      if (stopped || document.hidden) return;
      if (again) {
        again = false;
        tick();
      } else {
        timer = setTimeout(tick, REFRESH_MS);
      }
    };
    const onVisibility = () => {
      showRefreshState();
      if (document.hidden) {
        clearTimeout(timer);
        timer = null;
      } else if (!timer) {
        tick();
      }
    };
    document.addEventListener('visibilitychange', onVisibility);
    refreshers++;
    showRefreshState();
    tick();
    return {
      now() {
        clearTimeout(timer);
        timer = null;
        tick();
      },
      stop() {
        stopped = true;
        clearTimeout(timer);
        document.removeEventListener('visibilitychange', onVisibility);
        refreshers--;
        showRefreshState();
      },
    };
  }

  function reportError(e) {
    if (e && e.name === 'AbortError') return;
    if (e instanceof ApiError) notice(e.message, 'error');
    else notice(`The server could not be reached (${e && e.message ? e.message : e}).`, 'error');
  }

  // ---- confirmation -----------------------------------------------------

  function confirmAction(title, text, okLabel) {
    return new Promise((resolve) => {
      const dialog = $('confirm-dialog');
      $('confirm-title').textContent = title;
      $('confirm-text').textContent = text;
      $('confirm-ok').textContent = okLabel;
      dialog.returnValue = '';
      dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
      dialog.showModal();
      $('confirm-no').focus();
    });
  }

  // ---- the job list -----------------------------------------------------

  function parseListHash(hash) {
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
      h('tbody', {}, doc.queues.map((q) => row(q.queue, q.served ? 'yes' : 'no', q.counts || {},
        q.failed_last_hour))),
      h('tfoot', {}, row('all', '', doc.totals || {}, doc.failed_last_hour, 'totals')));
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

  function listView(filters) {
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
        if (!token) return;
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

  function jobView(id) {
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
          nextNotice = `Job ${id} was deleted.`;
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

  // ---- submitting -------------------------------------------------------

  function submitView() {
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
    }).catch(reportError);
    return { stop() {} };
  }

  // ---- routing ----------------------------------------------------------

  let current = null;

  function route() {
    if (current) current.stop();
    current = null;
    const hash = location.hash || '#/';
    const job = /^#\/jobs\/([^/?]+)$/.exec(hash);
    document.querySelectorAll('header nav a').forEach((a) => a.removeAttribute('aria-current'));
    if (job) {
      if (!JOB_ID.test(job[1])) {
        $('view').replaceChildren(h('p', { class: 'error' }, 'Not a job id: ', job[1]));
        return;
      }
      current = jobView(job[1]);
    } else if (hash === '#/submit') {
      $('nav-submit').setAttribute('aria-current', 'page');
      current = submitView();
    } else {
      $('nav-jobs').setAttribute('aria-current', 'page');
      current = listView(parseListHash(hash));
    }
  }

  function start() {
    $('notice-close').addEventListener('click', clearNotice);
    $('forget-token').addEventListener('click', () => {
      forgetToken();
      notice('The token was forgotten; the next request asks for one.');
    });
    // The token dialog stays until a token is given: without one the
    // server answers nothing.
    $('token-dialog').addEventListener('cancel', (event) => event.preventDefault());
    showTokenState();
    window.addEventListener('hashchange', () => {
      clearNotice();
      if (nextNotice) notice(nextNotice);
      nextNotice = null;
      route();
    });
    route();
  }

  start();
})();

// The server's API as the pages call it: the bearer token (asked once,
// kept in sessionStorage), errors, the queue counts, auto refresh and the
// confirmation dialog.
import { TOKEN_KEY, REFRESH_MS, $, notice } from './dom.js';

// ---- the API, with the token ------------------------------------------

export class ApiError extends Error {
  constructor(status, doc, message) {
    super(message || (doc && doc.detail) || `HTTP ${status}`);
    this.status = status;
    this.doc = doc || {};
  }
}

let token = sessionStorage.getItem(TOKEN_KEY);
let tokenPrompt = null;

export function showTokenState() {
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

// Whether the page holds a token (downloads then go through fetch).
export function hasToken() {
  return token !== null;
}

export function forgetToken() {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  showTokenState();
}

export async function errorDoc(response) {
  try {
    return await response.json();
  } catch {
    return {};
  }
}

// One API call. A 401 asks for a token and tries again; a 403 is an
// ApiError saying that the token may only read. With raw, the response
// (any other status) goes back to the caller as it is.
export async function api(method, path, options = {}) {
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
export async function fetchQueues() {
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
export function poller(fn) {
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

export function reportError(e) {
  if (e && e.name === 'AbortError') return;
  if (e instanceof ApiError) notice(e.message, 'error');
  else notice(`The server could not be reached (${e && e.message ? e.message : e}).`, 'error');
}

// ---- confirmation -----------------------------------------------------

export function confirmAction(title, text, okLabel) {
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

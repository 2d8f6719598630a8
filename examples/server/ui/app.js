// The jobs dashboard (docs/dashboard.adoc): plain JavaScript over the
// server's HTTP API (docs/http-api.adoc). Everything a job brings (its log,
// its error, its files' names, a server's error detail) is user data: it
// reaches the page only as text (textContent, text nodes, attribute values),
// never as HTML, and the Content-Security-Policy forbids inline script on
// top of that.
//
// This module routes the hash (#/, #/jobs/<id>, #/submit) to the views.
import { JOB_ID, h, $, notice, clearNotice, takeNextNotice } from './dom.js';
import { forgetToken, showTokenState } from './api.js';
import { listView, parseListHash } from './list.js';
import { jobView } from './job.js';
import { submitView } from './submit.js';

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
    const text = takeNextNotice();
    if (text) notice(text);
    route();
  });
  route();
}

start();

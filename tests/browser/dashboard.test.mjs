// The jobs dashboard (docs/dashboard.adoc) in a real browser: Debian's
// chromium driven by playwright-core, against example servers started here
// on free loopback ports with the local service stack.
//
//   node dashboard.test.mjs SERVER_BINARY AMQP_QUEUE_DELETE_BINARY OUT_DIR
//
// Submits through the page and watches the job go queued -> in-progress ->
// complete in the list and on its page, follows a log live (also across a
// restart of the server the page talks to), downloads a file, cancels a
// running job, checks that user data is shown as text, filters and pages
// the list, and uses a token. Writes screenshots of the list and a job page
// into OUT_DIR, and into docs/images when ACP_UPDATE_SCREENSHOTS=1. Every
// job, RabbitMQ queue and file the run creates is deleted at the end; the
// servers are stopped by pid. Prints TAP.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const STACK_VARS = [
  'ACP_TEST_PG_HOST', 'ACP_TEST_PG_PORT', 'ACP_TEST_PG_USER', 'ACP_TEST_PG_PASSWORD',
  'ACP_TEST_PG_DB', 'ACP_TEST_AMQP_HOST', 'ACP_TEST_AMQP_PORT', 'ACP_TEST_AMQP_USER',
  'ACP_TEST_AMQP_PASSWORD', 'ACP_TEST_S3_HOST', 'ACP_TEST_S3_PORT', 'ACP_TEST_S3_ACCESS_KEY',
  'ACP_TEST_S3_SECRET_KEY', 'ACP_TEST_S3_BUCKET',
];
// Hang guards, not timing assertions: every job here takes seconds.
const WAIT_MS = 60000;
const START_MS = 120000;
const ENDED = new Set(['complete', 'failed', 'expired', 'cancelled']);
const SOURCE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

class Failure extends Error {}

function check(condition, message) {
  if (!condition) throw new Failure(message);
}

const T0 = Date.now();
const elapsed = () => `${((Date.now() - T0) / 1000).toFixed(1)} s`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what, fn, timeout = WAIT_MS) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await fn();
    if (value) return value;
    check(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(100);
  }
}

// ---- servers ----------------------------------------------------------------

class Server {
  constructor(name, config) {
    this.name = name;
    this.configPath = path.join(run.work, `${name}.json`);
    this.logPath = path.join(run.work, `${name}.log`);
    this.config = config;
    this.proc = null;
    this.port = null;
  }

  async start() {
    writeFileSync(this.configPath, JSON.stringify(this.config, null, 2));
    const log = openSync(this.logPath, 'a');
    this.proc = spawn(run.binary, ['--config', this.configPath], { stdio: ['ignore', 'pipe', log] });
    this.exited = new Promise((resolve) => this.proc.on('exit', (code, signal) => resolve(signal ? 128 : code)));
    const lines = createInterface({ input: this.proc.stdout });
    const first = await Promise.race([
      new Promise((resolve) => lines.once('line', resolve)),
      this.exited.then((code) => `exited with ${code}`),
    ]);
    const m = /^listening on http:\/\/127\.0\.0\.1:(\d+)$/.exec(first);
    check(m, `${this.name} did not start (${first}):\n${this.logTail()}`);
    this.port = Number(m[1]);
    this.url = `http://127.0.0.1:${this.port}`;
    this.started = true;
    await until(`${this.name}'s /health`, async () => {
      try {
        return (await fetch(`${this.url}/health`)).status === 200;
      } catch {
        return false;
      }
    }, START_MS);
  }

  logTail(lines = 30) {
    try {
      return readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc?.exitCode;
    this.proc.kill('SIGTERM'); // by pid
    let timer;
    const code = await Promise.race([this.exited,
      new Promise((resolve) => { timer = setTimeout(() => resolve('timeout'), 180000); })]);
    clearTimeout(timer);
    if (code === 'timeout') {
      this.proc.kill('SIGKILL');
      throw new Failure(`${this.name} did not stop within 180 s of SIGTERM`);
    }
    return code;
  }

  async call(method, urlPath, body, headers = {}) {
    const init = { method, headers: { ...headers } };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
    const response = await fetch(`${this.url}${urlPath}`, init);
    const bytes = Buffer.from(await response.arrayBuffer());
    let json = null;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch {
      // not JSON: a file or a log
    }
    return { status: response.status, headers: response.headers, bytes, json };
  }
}

// ---- the run's state and helpers -----------------------------------------------

const run = {};
const cases = [];
const test = (description, fn) => cases.push([description, fn]);

// Every config carries the run's tag: a job id is the MD5 of its config, so
// a config without it would meet the job of an earlier run (whose files are
// under that run's S3 root).
async function submit(config, extra = {}, server = run.a) {
  const tagged = { run: run.tag, ...config };
  const r = await server.call('POST', '/jobs', { queue: run.queue, config: tagged, ...extra });
  check(r.status === 202 || r.status === 200, `POST /jobs: ${r.status} ${r.bytes}`);
  return r.json;
}

// The submit form once its queue field has settled (a select of the
// served queues once GET /queues answers, else a text field), with @queue
// chosen in it.
async function chooseQueue(page, queue) {
  await page.locator('#submit-form[data-ready="true"]').waitFor();
  const field = page.locator('#submit-queue');
  if ((await field.evaluate((e) => e.tagName)) === 'SELECT') await field.selectOption(queue);
  else await field.fill(queue);
}

async function job(id, server = run.a) {
  const r = await server.call('GET', `/jobs/${id}`);
  check(r.status === 200, `GET /jobs/${id}: ${r.status} ${r.bytes}`);
  return r.json;
}

async function waitEnd(id) {
  return until(`job ${id} to end`, async () => {
    const doc = await job(id);
    return ENDED.has(doc.status) ? doc : null;
  });
}

// A page with its console errors, uncaught exceptions and CSP violations
// recorded, and a trap for injected script (window.__xss).
async function openPage(context, url) {
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error') page.problems.push({ kind: 'console', text: m.text(), url: m.location().url });
  });
  page.on('pageerror', (e) => page.problems.push({ kind: 'exception', text: String(e) }));
  await page.addInitScript(() => {
    window.__xss = [];
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  if (url) await page.goto(url);
  return page;
}

// Console errors but the statuses a case expects (the 401 that makes the
// page ask for a token, the 400 of a refused submission: Chromium logs every
// answer >= 400 as a failed resource).
function problems(page, allowed = null) {
  return page.problems.filter((p) => !(p.kind === 'console' && (
    (allowed && allowed.test(p.text)))));
}

async function pageChecks(page, what, allowed = null) {
  const found = problems(page, allowed);
  check(found.length === 0, `${what}: ${JSON.stringify(found)}`);
  const csp = await page.evaluate(() => window.__csp);
  check(csp.length === 0, `${what}: CSP violations ${JSON.stringify(csp)}`);
  const xss = await page.evaluate(() => window.__xss);
  check(xss.length === 0, `${what}: injected script ran: ${JSON.stringify(xss)}`);
}

async function text(page, selector) {
  return (await page.locator(selector).first().textContent()) ?? '';
}

async function screenshot(page, name) {
  const file = path.join(run.outDir, `dashboard-${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  if (process.env.ACP_UPDATE_SCREENSHOTS === '1') {
    const images = path.join(SOURCE_ROOT, 'docs', 'images');
    mkdirSync(images, { recursive: true });
    copyFileSync(file, path.join(images, `dashboard-${name}.png`));
  }
}

// ---- cases -----------------------------------------------------------------

test('the page loads from the binary with its security headers, no console error and no CSP violation', async () => {
  const r = await run.a.call('GET', '/');
  check(r.status === 200, `GET /: ${r.status}`);
  check(r.headers.get('content-type') === 'text/html; charset=utf-8', `Content-Type ${r.headers.get('content-type')}`);
  const csp = r.headers.get('content-security-policy') || '';
  check(csp.includes("script-src 'self'") && csp.includes("frame-ancestors 'none'"), `CSP: ${csp}`);
  check(r.headers.get('x-content-type-options') === 'nosniff', 'no nosniff');
  check(r.headers.get('referrer-policy') === 'no-referrer', 'no Referrer-Policy');
  const etag = r.headers.get('etag');
  check(/^"[0-9a-f]{32}"$/.test(etag || ''), `ETag ${etag}`);
  const again = await run.a.call('GET', '/', undefined, { 'If-None-Match': etag });
  check(again.status === 304 && again.bytes.length === 0, `If-None-Match: ${again.status}`);
  const js = await run.a.call('GET', '/ui/app.js');
  check(js.status === 200 && js.headers.get('content-type').startsWith('text/javascript'), `app.js: ${js.status}`);
  check((await run.a.call('GET', '/ui/nothing.js')).status === 404, '/ui/nothing.js is not 404');
  check((await run.a.call('POST', '/')).status === 405, 'POST / is not 405');

  const page = await openPage(run.context, `${run.a.url}/`);
  await page.locator('#jobs-table').waitFor();
  await page.locator('#overview-table').waitFor();
  check((await text(page, '#refresh-state')).includes('auto refresh'), 'no auto refresh shown');
  await sleep(3000); // one auto refresh at least
  await pageChecks(page, 'the list');
  await page.close();
});

test('a job submitted through the form goes queued -> in-progress -> complete in the list and on its page', async () => {
  const page = await openPage(run.context, `${run.a.url}/#/submit`);
  await page.locator('#submit-form[data-ready="true"]').waitFor();
  const queue = page.locator('#submit-queue');
  check(await queue.evaluate((e) => e.tagName) === 'SELECT', 'the form does not offer the served queues');
  await queue.selectOption(run.queue);
  // Queued for 3 s (its delay), then in progress for 5 s: long enough for
  // the list's refresh every 2.5 s to see each.
  const config = `{"executor": "sleep", "seconds": 5, "run": "${run.tag}-form"}`;
  await page.locator('#submit-config').fill(config);
  await page.locator('#submit-delay').fill('3');
  await page.locator('#submit-priority').fill('3');
  await page.locator('#submit-button').click();
  await page.waitForURL(/#\/jobs\/[0-9a-f]{32}$/);
  const id = /#\/jobs\/([0-9a-f]{32})$/.exec(page.url())[1];
  run.formJob = id;
  const expectedId = createHash('md5').update(JSON.stringify(JSON.parse(config))).digest('hex');
  check(id === expectedId, `the job's id ${id} is not the MD5 of its config (${expectedId})`);

  // The list in another tab, filtered to the run's queue.
  const list = await openPage(run.context, `${run.a.url}/#/?queue=${run.queue}`);
  const onPage = [];
  const inList = [];
  let progressSeen = false;
  const note = (seen, status) => {
    if (status && seen[seen.length - 1] !== status) seen.push(status);
  };
  await until('the job to complete on both pages', async () => {
    const status = (await text(page, '#job-status')).trim();
    note(onPage, status);
    if (status === 'in-progress' && await page.locator('#job-progress progress').count()) progressSeen = true;
    const row = list.locator(`#jobs-table tr[data-id="${id}"]`);
    note(inList, (await row.count()) ? await row.getAttribute('data-status') : null);
    return onPage.at(-1) === 'complete' && inList.at(-1) === 'complete';
  });
  check(JSON.stringify(onPage) === '["queued","in-progress","complete"]', `on its page: ${onPage}`);
  check(JSON.stringify(inList) === '["queued","in-progress","complete"]', `in the list: ${inList}`);
  check(progressSeen, 'no progress bar while it ran');
  const facts = await text(page, '#job-facts');
  check(/Priority3/.test(facts) && /Attempts1 of \d+/.test(facts), `facts: ${facts}`);
  const created = await text(page, '[data-fact="created"]');
  check(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \((\d+ s ago|just now)\)$/.test(created), `created: ${created}`);
  await page.locator('#files-table tr[data-name="sleep.json"]').waitFor();
  await pageChecks(page, 'the job page');
  await pageChecks(list, 'the list');
  await list.close();
  await page.close();
});

test('the form shows the server\'s 400 detail for bad input', async () => {
  const page = await openPage(run.context, `${run.a.url}/#/submit`);
  await chooseQueue(page, run.queue);
  await page.locator('#submit-config').fill('{"executor": "sleep", "seconds": -1}');
  await page.locator('#submit-button').click();
  await page.locator('#submit-error').waitFor();
  const shown = await text(page, '#submit-error');
  const direct = await run.a.call('POST', '/jobs', { queue: run.queue, config: { executor: 'sleep', seconds: -1 } });
  check(direct.status === 400, `direct: ${direct.status}`);
  check(shown.includes(direct.json.detail), `shown "${shown}", the server says "${direct.json.detail}"`);
  await page.locator('#submit-config').fill('{"executor": ');
  await page.locator('#submit-button').click();
  await until('the JSON error', async () => (await text(page, '#submit-error')).includes('not valid JSON'));
  await pageChecks(page, 'the form', /status of 400/);
  await page.close();
});

test('a running job\'s log is followed live, also across a restart of the server the page reads from', async () => {
  // The job runs on server A; the page reads from server B, which is
  // restarted on the same port in the middle: the page resumes at the
  // offset it counted, and every line shows exactly once.
  const script = `for i in 1 2 3 4 5 6 7 8; do echo "tick $i of ${run.tag}"; sleep 1; done`;
  const doc = await submit({ executor: 'command', program: 'sh', args: ['-c', script] });
  run.logJob = doc.id;
  const page = await openPage(run.context, `${run.b.url}/#/jobs/${doc.id}`);
  const log = page.locator('#log');
  await until('tick 2 in the page', async () => (await log.textContent()).includes('tick 2 of'));
  const state = await job(doc.id);
  check(state.status === 'in-progress', `tick 2 shown but the job is ${state.status}`);
  check(!(await log.textContent()).includes('tick 8 of'), 'the whole log at once: not followed');
  check((await text(page, '#log-state')) === 'following', `log state ${await text(page, '#log-state')}`);

  const port = run.b.port;
  await run.b.stop();
  await until('the page to notice', async () => (await text(page, '#log-state')).includes('resuming'));
  run.b.config.listen.port = port;
  await run.b.start();
  await until('the log to end', async () => (await text(page, '#log-state')) === 'ended');
  const shown = await log.textContent();
  const expected = Array.from({ length: 8 }, (_, i) => `tick ${i + 1} of ${run.tag}\n`).join('');
  check(shown === expected, `the page shows ${JSON.stringify(shown)}`);
  check((await waitEnd(doc.id)).status === 'complete', 'the job did not complete');
  // the errors of the lost connection are expected here, nothing else
  page.problems = page.problems.filter((p) => !/ERR_|Failed to fetch|network/i.test(p.text));
  await pageChecks(page, 'the log page');
  await page.close();
});

test('a result file downloads with its exact bytes', async () => {
  const doc = await submit({ executor: 'checksum', text: `download ${run.tag}` });
  await waitEnd(doc.id);
  const page = await openPage(run.context, `${run.a.url}/#/jobs/${doc.id}`);
  const row = page.locator('#files-table tr[data-name="checksum.json"]');
  await row.waitFor();
  const expected = await run.a.call('GET', `/jobs/${doc.id}/files/checksum.json`);
  check((await row.locator('td.num').getAttribute('title')) === `${expected.bytes.length} bytes`, 'size');
  const [download] = await Promise.all([page.waitForEvent('download'), row.locator('a.download').click()]);
  check(download.suggestedFilename() === 'checksum.json', `file name ${download.suggestedFilename()}`);
  const got = readFileSync(await download.path());
  check(got.equals(expected.bytes), `downloaded ${got.length} bytes that differ from the server's ${expected.bytes.length}`);
  await pageChecks(page, 'the download');
  await page.close();
});

test('cancel through the button and its confirmation: the running job ends cancelled', async () => {
  const doc = await submit({ executor: 'sleep', seconds: 50, run: `${run.tag}-cancel` });
  const page = await openPage(run.context, `${run.a.url}/#/jobs/${doc.id}`);
  await until('the job to run', async () => (await text(page, '#job-status')).startsWith('in-progress'));
  await page.locator('#action-cancel').click();
  const dialog = page.locator('#confirm-dialog');
  await dialog.waitFor();
  check((await text(page, '#confirm-title')).includes('Cancel'), 'no confirmation');
  // "Keep it" first: nothing happens.
  await page.locator('#confirm-no').click();
  await sleep(500);
  check((await job(doc.id)).cancel_requested === false, 'cancelled without confirmation');
  await page.locator('#action-cancel').click();
  await page.locator('#confirm-ok').click();
  await until('cancelled on the page', async () => (await text(page, '#job-status')) === 'cancelled');
  check((await job(doc.id)).status === 'cancelled', 'the server does not say cancelled');
  check(await page.locator('#action-cancel').isDisabled(), 'cancel still offered');
  await pageChecks(page, 'the cancel');
  await page.close();
});

test('a log line and a config member with <script> and <img onerror> show as text and run nothing', async () => {
  const script = '<script>window.__xss.push("log script")</script>';
  const img = '<img src=x onerror="window.__xss.push(2)">';
  const doc = await submit({ executor: 'command', program: 'sh', args: ['-c', `printf '%s\\n%s\\n' '${script}' '${img}'`] });
  await waitEnd(doc.id);
  const page = await openPage(run.context, `${run.a.url}/#/jobs/${doc.id}`);
  await until('the log', async () => (await text(page, '#log-state')) === 'ended');
  const shown = await text(page, '#log');
  check(shown === `${script}\n${img}\n`, `log shown as ${JSON.stringify(shown)}`);
  check(await page.locator('#log *').count() === 0, 'the log has elements in it');
  check(await page.locator('img[src="x"], script:not([src])').count() === 0, 'an injected element exists');

  // The config's members come back in the server's 400 detail.
  await page.goto(`${run.a.url}/#/submit`);
  await chooseQueue(page, run.queue);
  const bad = JSON.stringify({ executor: `${img}${script}`, note: script });
  await page.locator('#submit-config').fill(bad);
  await page.locator('#submit-button').click();
  await page.locator('#submit-error').waitFor();
  const detail = await text(page, '#submit-error');
  check(detail.includes(img) && detail.includes(script), `the error shows ${JSON.stringify(detail)}`);
  check(await page.locator('#submit-error img, #submit-error script').count() === 0, 'the error has elements from the config');
  await sleep(500);
  await pageChecks(page, 'the escaping', /status of 400/);
  await page.close();
});

test('filters by status and queue, and pages forward and back with the cursors', async () => {
  const ids = [];
  for (let i = 0; i < 7; i++) ids.push((await submit({ executor: 'checksum', text: `page ${i} ${run.tag}` })).id);
  for (const id of ids) await waitEnd(id);
  const all = (await run.a.call('GET', `/jobs?queue=${run.queue}&limit=1000`)).json.jobs.map((j) => j.id);
  check(all.length > 5, `only ${all.length} jobs`);

  const page = await openPage(run.context, `${run.a.url}/#/?queue=${run.queue}&limit=5`);
  const rows = page.locator('#jobs-table tbody tr');
  const pageIds = async () => rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.id));
  await until('page 1', async () => (await rows.count()) === 5);
  const seen = [];
  const first = await pageIds();
  for (let n = 1; ; n++) {
    const current = await pageIds();
    check((await text(page, '#page-number')) === `page ${n}`, `page label ${await text(page, '#page-number')}`);
    seen.push(...current);
    if (await page.locator('#page-next').isDisabled()) break;
    await page.locator('#page-next').click();
    await until(`page ${n + 1}`, async () => {
      const next = await pageIds();
      return next.length > 0 && next[0] !== current[0];
    });
  }
  check(JSON.stringify([...seen].sort()) === JSON.stringify([...all].sort()) && seen.length === all.length,
    `pages show ${seen.length} jobs, the queue has ${all.length}`);
  while (!(await page.locator('#page-prev').isDisabled())) {
    const current = await pageIds();
    await page.locator('#page-prev').click();
    await until('the page before', async () => (await pageIds())[0] !== current[0]);
  }
  check(JSON.stringify(await pageIds()) === JSON.stringify(first), 'back on page 1: other jobs');

  // Status: only the cancelled job; then complete and cancelled together.
  await page.locator('#status-filter button[data-status="cancelled"]').click();
  await until('the cancelled filter', async () => page.url().includes('status=cancelled') &&
    (await rows.count()) === 1 && (await rows.first().getAttribute('data-status')) === 'cancelled');
  await page.locator('#status-filter button[data-status="complete"]').click();
  await until('two statuses', async () => page.url().includes('status=complete%2Ccancelled') ||
    page.url().includes('status=complete,cancelled'));
  await until('the rows of both', async () => {
    const statuses = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.status));
    return statuses.length === 5 && statuses.every((s) => s === 'complete' || s === 'cancelled');
  });
  // Another queue's name: nothing.
  await page.locator('#status-filter button[data-status="all"]').click();
  await page.locator('#filter-queue').fill(`${run.queue}-none`);
  await page.locator('#filter-queue').press('Enter');
  await until('the empty list', async () => page.locator('#jobs-empty').isVisible());
  await pageChecks(page, 'the filters');
  await page.close();
});

test('auto refresh stops while the tab is hidden and resumes when it is shown', async () => {
  const page = await openPage(run.context);
  let requests = 0;
  page.on('request', (r) => {
    if (new URL(r.url()).pathname === '/jobs') requests++;
  });
  await page.goto(`${run.a.url}/#/?queue=${run.queue}`);
  await until('a refresh', async () => requests >= 2);
  const setHidden = (hidden) => page.evaluate((value) => {
    Object.defineProperty(document, 'hidden', { value, configurable: true });
    Object.defineProperty(document, 'visibilityState', { value: value ? 'hidden' : 'visible', configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
  await setHidden(true);
  await sleep(500); // a request already on its way
  const before = requests;
  check((await text(page, '#refresh-state')).includes('paused'), 'not shown as paused');
  await sleep(6000); // more than two refresh periods
  check(requests === before, `${requests - before} requests while hidden`);
  await setHidden(false);
  await until('a refresh after showing', async () => requests > before);
  await pageChecks(page, 'the hidden tab');
  await page.close();
});

test('counts per status and the queue overview match GET /queues', async () => {
  const page = await openPage(run.context, `${run.a.url}/#/?queue=${run.queue}`);
  const row = page.locator(`#overview-table tr[data-queue="${run.queue}"]`);
  await row.waitFor();
  // Nothing runs now: the counts hold still (the route caches up to 2 s).
  await sleep(2500);
  const doc = (await run.a.call('GET', '/queues')).json;
  const q = doc.queues.find((x) => x.queue === run.queue);
  check(q && q.served === true, `GET /queues: ${JSON.stringify(doc)}`);
  await until('the overview to match', async () =>
    (await text(page, `#overview-table tr[data-queue="${run.queue}"] .count-queued`)) === String(q.counts.queued) &&
    (await text(page, `#overview-table tr[data-queue="${run.queue}"] .count-running`)) === String(q.counts['in-progress']) &&
    (await text(page, `#overview-table tr[data-queue="${run.queue}"] .count-failed-hour`)) === String(q.failed_last_hour));
  for (const status of ['queued', 'in-progress', 'complete', 'failed', 'expired', 'cancelled']) {
    const count = await text(page, `#status-filter button[data-status="${status}"] .count`);
    check(count === String(q.counts[status]), `${status}: the page says ${count}, GET /queues ${q.counts[status]}`);
  }
  check(q.counts.complete >= 9 && q.counts.cancelled === 1, `counts: ${JSON.stringify(q.counts)}`);
  await screenshot(page, 'list');
  await pageChecks(page, 'the counts');
  await page.close();
});

test('screenshots of the list and of a job page', async () => {
  const list = await openPage(run.context, `${run.a.url}/#/?queue=${run.queue}&limit=10`);
  await list.locator('#jobs-table tbody tr').first().waitFor();
  await list.locator('#overview-table').waitFor(); // the list's own is taken with the counts above
  await list.close();
  const page = await openPage(run.context, `${run.a.url}/#/jobs/${run.logJob}`);
  await until('the log', async () => (await text(page, '#log-state')) === 'ended');
  await page.locator('#files-table tbody tr').first().waitFor();
  await screenshot(page, 'job');
  await page.close();
});

test('with tokens: the page asks for one, keeps it for the session only, and a read token may only read ', async () => {
  const write = randomBytes(24).toString('hex');
  const read = randomBytes(24).toString('hex');
  run.c = new Server('server-c', {
    ...run.base,
    queues: [{ id: `${run.queue}-c`, workers: 1 }],
    workspace_root: path.join(run.work, 'ws-c'),
    auth: { tokens: [
      { name: 'browser-write', role: 'write', token: write },
      { name: 'browser-read', role: 'read', sha256: createHash('sha256').update(read).digest('hex') },
    ] },
  });
  run.c.token = write; // for the clean-up, whatever happens below
  await run.c.start();
  const unauth = await run.c.call('GET', '/jobs');
  check(unauth.status === 401, `GET /jobs without a token: ${unauth.status}`);
  const context = await run.browser.newContext({ viewport: { width: 1280, height: 800 } });
  try {
    const page = await openPage(context, `${run.c.url}/`);
    await page.locator('#token-dialog[open]').waitFor();
    await page.locator('#token-input').fill('not-the-token-0123456789');
    await page.locator('#token-submit').click();
    await until('the refusal', async () => (await text(page, '#token-error')).includes('refused'));
    await page.locator('#token-input').fill(write);
    await page.locator('#token-submit').click();
    await page.locator('#token-dialog').waitFor({ state: 'hidden' });
    const stored = await page.evaluate(() => [sessionStorage.getItem('acp-dashboard-token'), localStorage.length, document.cookie]);
    check(stored[0] === write && stored[1] === 0 && stored[2] === '', `stored: ${JSON.stringify(stored.slice(1))}`);

    // Submit through the form, then download with the token (a Blob).
    await page.goto(`${run.c.url}/#/submit`);
    await chooseQueue(page, `${run.queue}-c`);
    await page.locator('#submit-config').fill(JSON.stringify({ executor: 'checksum', text: `token ${run.tag}` }));
    await page.locator('#submit-button').click();
    await page.waitForURL(/#\/jobs\/[0-9a-f]{32}$/);
    const id = /([0-9a-f]{32})$/.exec(page.url())[1];
    run.tokenJob = id;
    const link = page.locator('#files-table tr[data-name="checksum.json"] a.download');
    await link.waitFor();
    const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
    const expected = await run.c.call('GET', `/jobs/${id}/files/checksum.json`, undefined, { Authorization: `Bearer ${write}` });
    check(readFileSync(await download.path()).equals(expected.bytes), 'the download with the token differs');
    await pageChecks(page, 'the write token', /status of 401/);
    await page.close();

    // A read token: sees the job, may not delete it.
    const reader = await run.browser.newContext();
    const other = await openPage(reader, `${run.c.url}/#/jobs/${id}`);
    await other.locator('#token-dialog[open]').waitFor();
    await other.locator('#token-input').fill(read);
    await other.locator('#token-submit').click();
    await until('the job with the read token', async () => (await text(other, '#job-status')) === 'complete');
    await other.locator('#action-delete').click();
    await other.locator('#confirm-ok').click();
    await until('the refusal', async () => /this token may only read/i.test(await text(other, '#notice-text')));
    check((await run.c.call('GET', `/jobs/${id}`, undefined, { Authorization: `Bearer ${read}` })).status === 200, 'the job went');
    await reader.close();
  } finally {
    await context.close();
  }
});

// ---- driver ------------------------------------------------------------------

function stackPresent() {
  const missing = STACK_VARS.find((v) => !process.env[v]);
  if (!missing) return true;
  if (process.env.ACP_TEST_REQUIRE_SERVICES === '1') {
    console.log(`1..1\nnot ok 1 - stack settings: ${missing} is not set (eval "$(scripts/stack up)")`);
    process.exit(1);
  }
  console.log(`1..0 # SKIP ${missing} is not set; run eval "$(scripts/stack up)" first`);
  process.exit(0);
}

async function cleanup() {
  for (const [server, queue, headers] of [[run.a, run.queue, {}],
    [run.c, `${run.queue}-c`, run.c?.token ? { Authorization: `Bearer ${run.c.token}` } : {}]]) {
    if (!server?.port || server.proc?.exitCode !== null) continue;
    const r = await server.call('GET', `/jobs?queue=${queue}&limit=1000`, undefined, headers);
    if (r.status !== 200) continue;
    for (const j of r.json.jobs) {
      if (!ENDED.has(j.status)) await server.call('POST', `/jobs/${j.id}/cancel`, undefined, headers);
      await until(`job ${j.id} to end`, async () => {
        const doc = (await server.call('GET', `/jobs/${j.id}`, undefined, headers)).json;
        return doc && ENDED.has(doc.status);
      });
      const d = await server.call('DELETE', `/jobs/${j.id}`, undefined, headers);
      check(d.status === 204, `DELETE ${j.id}: ${d.status}`);
    }
  }
}

async function main() {
  stackPresent();
  const [binary, queueDelete, outDir] = process.argv.slice(2);
  run.binary = path.resolve(binary);
  run.outDir = path.resolve(outDir || '.');
  run.tag = randomBytes(4).toString('hex');
  run.queue = `browser-${run.tag}`;
  run.work = mkdtempSync(path.join(tmpdir(), `acp-browser-${run.tag}-`));
  const sh = realpathSync('/bin/sh');
  run.base = {
    listen: { address: '127.0.0.1', port: 0, request_timeout: 10 },
    s3: { root_path: `browser-test-${run.tag}` },
    layout: process.env.ACP_TEST_LAYOUT || 'native',
    shutdown_timeout: 5,
    log_level: 'info',
    executors: {
      sleep: { max_seconds: 60 },
      command: { programs: { sh: { path: sh, options: ['-c'] } }, timeout_seconds: 60 },
    },
  };
  run.a = new Server('server-a', { ...run.base, queues: [{ id: run.queue, workers: 3 }], workspace_root: path.join(run.work, 'ws-a') });
  // The log test's second server: it reads the log of a job that A runs.
  run.b = new Server('server-b', { ...run.base, listen: { ...run.base.listen }, queues: [{ id: `${run.queue}-b`, workers: 1 }], workspace_root: path.join(run.work, 'ws-b') });
  console.log(`# run ${run.tag}: queue ${run.queue}, files in ${run.work}`);

  let failed = 0;
  let number = 0;
  try {
    console.log(`# [${elapsed()}] starting the servers`);
    await run.a.start();
    await run.b.start();
    console.log(`# [${elapsed()}] servers up`);
    run.browser = await chromium.launch({
      executablePath: process.env.ACP_CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    run.context = await run.browser.newContext({ viewport: { width: 1280, height: 800 } });
  } catch (e) {
    console.log(`not ok 1 - set-up: servers and browser\n# ${String(e.stack || e).replaceAll('\n', '\n# ')}`);
    console.log(`# server-a log:\n# ${run.a.logTail().replaceAll('\n', '\n# ')}`);
    number = 1;
    failed = 1;
  }
  console.log(`# [${elapsed()}] browser up`);
  if (!failed) {
    for (const [description, fn] of cases) {
      number++;
      const started = Date.now();
      try {
        await fn();
        console.log(`ok ${number} - ${description} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
      } catch (e) {
        failed++;
        console.log(`not ok ${number} - ${description} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
        const detail = e instanceof Failure ? e.message : String(e.stack || e);
        console.log(`# ${detail.replaceAll('\n', '\n# ')}`);
      }
    }
  }
  // Last case: whatever happened, delete the run's jobs and stop the servers.
  number++;
  const problemsAtEnd = [];
  try {
    await cleanup();
  } catch (e) {
    problemsAtEnd.push(`clean-up: ${e.message}`);
  }
  if (run.browser) await run.browser.close();
  for (const server of [run.a, run.b, run.c]) {
    if (!server?.started) continue;
    try {
      const code = await server.stop();
      if (code !== 0) problemsAtEnd.push(`${server.name} exited with ${code}`);
      const log = readFileSync(server.logPath, 'utf8');
      for (const marker of ['AddressSanitizer', 'runtime error:', 'LeakSanitizer']) {
        if (log.includes(marker)) problemsAtEnd.push(`${marker} in ${server.name}'s log`);
      }
    } catch (e) {
      problemsAtEnd.push(e.message);
    }
  }
  if (problemsAtEnd.length) {
    failed++;
    console.log(`not ok ${number} - clean-up: the run's jobs deleted, the servers stopped by SIGTERM with exit 0`);
    console.log(`# ${problemsAtEnd.join('\n').replaceAll('\n', '\n# ')}`);
  } else {
    console.log(`ok ${number} - clean-up: the run's jobs deleted, the servers stopped by SIGTERM with exit 0`);
  }
  if (failed) console.log(`# server-a log (last lines):\n# ${run.a.logTail(40).replaceAll('\n', '\n# ')}`);
  spawnSync(queueDelete, [process.env.ACP_TEST_AMQP_HOST, process.env.ACP_TEST_AMQP_PORT,
    process.env.ACP_TEST_AMQP_USER, process.env.ACP_TEST_AMQP_PASSWORD,
    `${run.queue}_jobs`, `${run.queue}-b_jobs`, `${run.queue}-c_jobs`], { stdio: 'inherit' });
  if (!failed) rmSync(run.work, { recursive: true, force: true });
  else console.log(`# logs kept in ${run.work}`);
  console.log(`# [${elapsed()}] done`);
  console.log(`1..${number}`);
  return failed ? 1 : 0;
}

process.exitCode = await main();

// The dashboard's shared constants, DOM building, formatting and notices.
// Everything shown is built as text nodes and attribute values, never as
// HTML: see app.js.

export const TOKEN_KEY = 'acp-dashboard-token';
export const REFRESH_MS = 2500;
export const PAGE_SIZES = [5, 10, 20, 50, 100];
export const DEFAULT_PAGE_SIZE = 20;
export const STATUSES = ['queued', 'in-progress', 'complete', 'failed', 'expired', 'cancelled'];
export const ENDED = new Set(['complete', 'failed', 'expired', 'cancelled']);
export const JOB_ID = /^[0-9a-f]{32}$/;

// ---- DOM helpers ------------------------------------------------------

// An element with attributes and children; strings become text nodes.
export function h(tag, attrs, ...children) {
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

export const $ = (id) => document.getElementById(id);
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- formatting -------------------------------------------------------

export function absTime(iso) {
  if (!iso) return '';
  return iso.replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC');
}

export function relTime(iso, now = Date.now()) {
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
export function timeCell(iso) {
  if (!iso) return h('span', { class: 'muted' }, '–');
  return h('time', { datetime: iso, title: absTime(iso) }, relTime(iso));
}

// Both, for the job page.
export function timeFull(iso) {
  if (!iso) return h('span', { class: 'muted' }, '–');
  return h('span', {}, h('time', { datetime: iso }, absTime(iso)), ' ',
    h('span', { class: 'muted' }, `(${relTime(iso)})`));
}

export function size(bytes) {
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

export function statusBadge(status, cancelRequested) {
  return h('span', { class: `status status-${status}` }, status,
    cancelRequested && !ENDED.has(status) ? ' (cancelling)' : null);
}

export function progressOf(job) {
  const p = job.progress;
  if (!p) return null;
  const bar = h('progress', { max: p.total || 1 });
  if (p.total) bar.value = Math.min(p.done, p.total);
  else bar.removeAttribute('value'); // unknown total: indeterminate
  const label = p.total ? `${p.done} of ${p.total}` : `${p.done}`;
  return h('span', { class: 'progress' }, bar, ' ', label, p.text ? ` · ${p.text}` : null);
}

// ---- notices ----------------------------------------------------------

export function notice(text, kind = 'info') {
  $('notice-text').textContent = text;
  $('notice').className = `notice-${kind}`;
  $('notice').hidden = false;
}

export function clearNotice() {
  $('notice').hidden = true;
}

// A notice for the view that the next hash change opens.
let nextNotice = null;

export function setNextNotice(text) {
  nextNotice = text;
}

// The notice set for this view, once.
export function takeNextNotice() {
  const text = nextNotice;
  nextNotice = null;
  return text;
}

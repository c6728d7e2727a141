// DOM building without HTML parsing: every piece of data becomes a text node or an attribute
// value, never markup. Nothing here touches innerHTML.

const SVG_NS = 'http://www.w3.org/2000/svg';

function applyAttributes(el, attrs) {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.setAttribute('class', String(value));
    else if (key === 'dataset') for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

function appendChildren(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element: `h('td', { class: 'x' }, 'text', otherElement)`. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  applyAttributes(el, attrs);
  appendChildren(el, children);
  return el;
}

/** An SVG element. */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  applyAttributes(el, attrs);
  appendChildren(el, children);
  return el;
}

/** A link handled by the page's router (no reload). */
export function link(href, ...children) {
  return h('a', { href, 'data-link': true }, ...children);
}

/** A link only for http(s) URLs; anything else (javascript:, data:) stays text. */
export function externalLink(value) {
  try {
    const url = new URL(value);
    if (url.protocol === 'http:' || url.protocol === 'https:') {
      return h('a', { href: url.href, rel: 'noopener noreferrer', target: '_blank' }, value);
    }
  } catch {
    // not a URL: shown as text
  }
  return document.createTextNode(value);
}

/**
 * A table in a box that scrolls sideways when the window is narrower than the table: columns are
 * as wide as their longest word, so words never break to make room.
 */
export function scrollable(table) {
  return h('div', { class: 'table-scroll' }, table);
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  appendChildren(el, children);
  return el;
}

/** `1.2 s`, `42 s`, `3 min 5 s`, `2 h 4 min`. */
export function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '–';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  const seconds = Math.floor(ms / 1000);
  if (seconds < 120) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes} min ${seconds % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** Local date and time, to the second. */
export function formatTime(iso) {
  if (!iso) return '–';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString(undefined, { hour12: false });
}

/** Status names as CSS classes: `ROLLED_BACK` → `status-rolled_back`. */
export function statusClass(status) {
  return `status-${String(status || 'unknown').toLowerCase()}`;
}

export function badge(status) {
  return h('span', { class: `badge ${statusClass(status)}`, 'data-status': status }, status || '–');
}

export const ACTIVE = new Set(['PENDING', 'RUNNING']);

// Shared pieces: title cards, rows, messages. Catalog text always goes in as text nodes.
import { h, formatDuration } from './dom.js';

const HUES = 12;

function hueClass(id) {
  let n = 0;
  for (const ch of String(id || '')) n = (n * 31 + ch.charCodeAt(0)) >>> 0;
  return `hue-${n % HUES}`;
}

/** The poster image when the API gives one, else a coloured tile with the name as text. */
export function poster(title, { large = false } = {}) {
  const url = title.poster_url || title.poster || null;
  const box = h('div', { class: ['poster', hueClass(title.id), large && 'poster-large'] });
  if (url && typeof url === 'string' && (url.startsWith('/') || url.startsWith(location.origin))) {
    const img = h('img', { src: url, alt: '', loading: 'lazy', decoding: 'async' });
    img.addEventListener('error', () => img.remove());
    box.append(img);
  }
  box.append(h('span', { class: 'poster-name', 'aria-hidden': 'true' }, title.title || ''));
  return box;
}

export function titleHref(title) {
  return `/title/${encodeURIComponent(title.id)}`;
}

export function metaLine(title) {
  const bits = [];
  if (title.year) bits.push(String(title.year));
  if (title.kind === 'series') bits.push('Series');
  if (title.kind === 'episode' && title.season_number != null) {
    bits.push(`S${title.season_number} E${title.episode_number}`);
  }
  if (title.duration_s) bits.push(formatDuration(title.duration_s));
  if (Array.isArray(title.genres) && title.genres.length) bits.push(title.genres.slice(0, 2).join(', '));
  return bits.join(' · ');
}

/** Statuses a viewer can press play on: `playable` is a first version still being encoded. */
export const PLAYS = new Set(['ready', 'playable']);

export function plays(title) {
  return Boolean(title) && title.kind !== 'series' && PLAYS.has(title.status);
}

export const ENCODING_NOTE = 'Still encoding — more qualities soon';

/** The small note a playable title carries (text only, like every catalog value). */
export function encodingNote(attrs = {}) {
  return h('span', { class: 'encoding-note', ...attrs }, ENCODING_NOTE);
}

/** A card linking to a title; `progress` (0..1) draws a watched bar. */
export function card(title, { progress = null, href = null } = {}) {
  const children = [
    poster(title),
    h('span', { class: 'card-title' }, title.title || 'Untitled'),
    h('span', { class: 'card-meta' }, metaLine(title)),
  ];
  if (title.status === 'playable' && title.kind !== 'series') {
    children.push(encodingNote());
  } else if (title.status && title.status !== 'ready' && title.kind !== 'series') {
    children.push(h('span', { class: ['badge', `status-${title.status}`] }, title.status));
  }
  if (progress !== null && Number.isFinite(progress)) {
    const pct = Math.max(0, Math.min(100, Math.round(progress * 100)));
    const bar = h('span', { class: 'progress', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': String(pct), 'aria-label': 'Watched' },
      h('span', { class: 'progress-fill' }));
    bar.firstChild.style.width = `${pct}%`; // CSSOM, allowed by the CSP (no inline style attribute)
    children.push(bar);
  }
  const meta = metaLine(title);
  const label = [title.title || 'Untitled', meta, progress !== null && Number.isFinite(progress) ? `${Math.round(progress * 100)}% watched` : '']
    .filter(Boolean).join(', ');
  return h('li', { class: 'card' }, h('a', { class: 'card-link', href: href || titleHref(title), 'aria-label': label }, children));
}

export function row(heading, cards, { id } = {}) {
  const headingId = `row-${id || heading.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return h('section', { class: 'row', 'aria-labelledby': headingId, dataset: { row: id || '' } },
    h('h2', { id: headingId }, heading),
    h('ul', { class: 'row-items' }, cards));
}

export function grid(cards, label) {
  return h('ul', { class: 'grid', 'aria-label': label || null }, cards);
}

export function pageTitle(text) {
  document.title = text ? `${text} · StreamFlix` : 'StreamFlix';
  return h('h1', { class: 'page-title', tabindex: '-1' }, text);
}

export function message(text, kind = 'info') {
  return h('p', { class: ['page-message', `message-${kind}`], role: kind === 'error' ? 'alert' : null }, text);
}

export function showError(container, err) {
  const text = err && err.status === 404 ? 'Not found.' : `Something went wrong: ${err && err.message ? err.message : err}`;
  container.replaceChildren(pageTitle('Sorry'), message(text, 'error'), h('p', {}, h('a', { href: '/' }, 'Back to home')));
}

let flashTimer = null;
export function flash(text, kind = 'info') {
  const el = document.getElementById('flash');
  if (!el) return;
  el.textContent = text;
  el.className = `flash flash-${kind}`;
  el.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => {
    el.hidden = true;
  }, 6000);
}

/** Drop a message that no longer holds (a "Welcome back." when the session just ended). */
export function hideFlash() {
  const el = document.getElementById('flash');
  if (el) el.hidden = true;
  clearTimeout(flashTimer);
}

export function spinner(label = 'Loading') {
  return h('p', { class: 'loading', role: 'status' }, `${label}…`);
}

// The seek bar with thumbnails: a range input under the video (Tab reaches it, arrow keys and
// Home/End seek, as any slider) that shows, above the point under the pointer or the point
// the keyboard moved to, the thumbnail of that moment and its time. The thumbnails come from
// the version's WebVTT index (`thumbnails_url` of the playback answer): one cue per
// thumbnail, its text a sprite sheet's URL with `#xywh=x,y,w,h` naming the tile. The sheet is
// shown in an <img> inside a tile-sized window, shifted so only that tile shows.
import { h } from './dom.js';

const KEYBOARD_PREVIEW_MS = 1500;

/** `hh:mm:ss.ttt` or `mm:ss.ttt` in seconds (W3C WebVTT 4.1). */
function seconds(text) {
  return text.split(':').reduce((total, part) => total * 60 + Number(part), 0);
}

/**
 * The cues of a thumbnails index: [{start, end, url, x, y, w, h}], in time order. Each URL is
 * resolved against the index's own URL (it carries the viewer's token already).
 */
export function parseThumbnailCues(text, indexUrl) {
  const cues = [];
  for (const block of text.replace(/\r\n?/g, '\n').split(/\n{2,}/)) {
    const lines = block.trim().split('\n');
    const at = lines.findIndex((line) => line.includes('-->'));
    if (at < 0 || !lines[at + 1]) continue;
    const [start, end] = lines[at].split('-->').map((part) => seconds(part.trim().split(/\s+/)[0]));
    const [ref, fragment] = lines[at + 1].trim().split('#xywh=');
    const box = (fragment || '').split(',').map(Number);
    if (!(end > start) || box.length !== 4 || box.some((n) => !Number.isFinite(n))) continue;
    const [x, y, w, hh] = box;
    cues.push({ start, end, url: new URL(ref, indexUrl).href, x, y, w, h: hh });
  }
  return cues.sort((a, b) => a.start - b.start);
}

/** The cue showing at `t` seconds (the last one for a time past the end), or null. */
export function cueAt(cues, t) {
  let lo = 0;
  let hi = cues.length - 1;
  if (hi < 0) return null;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (cues[mid].start <= t) lo = mid;
    else hi = mid - 1;
  }
  return cues[lo].start <= t || lo === 0 ? cues[lo] : null;
}

function clock(t) {
  const s = Math.max(0, Math.floor(t));
  const mm = String(Math.floor((s % 3600) / 60));
  const ss = String(s % 60).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/** The seek bar for `video`, its previews from the index at `thumbnailsUrl`. */
export function seekBar(video, thumbnailsUrl) {
  const input = h('input', {
    type: 'range', id: 'seek', class: 'seek-range', min: '0', max: '0', step: 'any', value: '0', 'aria-label': 'Seek',
  });
  const sheet = h('img', { class: 'seek-preview-sheet', id: 'seek-preview-image', alt: '', decoding: 'async' });
  const frame = h('div', { class: 'seek-preview-frame' }, sheet);
  const time = h('span', { class: 'seek-preview-time' });
  // Decoration for pointer users; the slider's own value text is what a screen reader says.
  const preview = h('div', { class: 'seek-preview', id: 'seek-preview', hidden: true, 'aria-hidden': 'true' }, frame, time);
  const bar = h('div', { class: 'seek-bar' }, preview, input);
  let cues = [];
  let hideTimer = null;
  let dragging = false;

  fetch(thumbnailsUrl, { credentials: 'same-origin' })
    .then((r) => (r.ok ? r.text() : ''))
    .then((text) => { cues = parseThumbnailCues(text, new URL(thumbnailsUrl, location.href).href); })
    .catch(() => { /* no thumbnails: the bar still seeks */ });

  const duration = () => (Number.isFinite(video.duration) ? video.duration : 0);
  const show = (t, clientX) => {
    clearTimeout(hideTimer);
    const cue = cueAt(cues, t);
    const width = input.getBoundingClientRect().width;
    time.textContent = clock(t);
    preview.dataset.time = String(t);
    if (cue) {
      frame.style.width = `${cue.w}px`;
      frame.style.height = `${cue.h}px`;
      if (sheet.getAttribute('src') !== cue.url) sheet.src = cue.url;
      sheet.style.transform = `translate(${-cue.x}px, ${-cue.y}px)`;
    }
    frame.hidden = !cue;
    const half = (cue ? cue.w : 40) / 2 + 4;
    const left = clientX === undefined ? (t / (duration() || 1)) * width : clientX - input.getBoundingClientRect().left;
    // Kept inside the bar, so a phone's narrow screen never cuts the preview off.
    preview.style.left = `${Math.min(Math.max(left, half), Math.max(half, width - half))}px`;
    preview.hidden = false;
  };
  const hide = () => {
    clearTimeout(hideTimer);
    preview.hidden = true;
  };
  const at = (clientX) => {
    const rect = input.getBoundingClientRect();
    return Math.min(Math.max((clientX - rect.left) / (rect.width || 1), 0), 1) * duration();
  };

  const sync = () => {
    input.max = String(duration());
    if (!dragging) input.value = String(video.currentTime);
    input.setAttribute('aria-valuetext', `${clock(video.currentTime)} of ${clock(duration())}`);
  };
  video.addEventListener('durationchange', sync);
  video.addEventListener('loadedmetadata', sync);
  video.addEventListener('timeupdate', sync);

  input.addEventListener('pointermove', (e) => show(at(e.clientX), e.clientX));
  input.addEventListener('pointerdown', () => { dragging = true; });
  input.addEventListener('pointerup', () => { dragging = false; });
  input.addEventListener('pointerleave', () => { if (!dragging) hide(); });
  input.addEventListener('blur', hide);
  input.addEventListener('input', () => {
    const t = Number(input.value);
    video.currentTime = t;
    if (!dragging) {
      // Keyboard seeking: the thumbnail of where it went, for a moment.
      show(t);
      hideTimer = setTimeout(hide, KEYBOARD_PREVIEW_MS);
    }
  });
  return bar;
}

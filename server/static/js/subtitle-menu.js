// The player's subtitles menu: a native <select> (keyboard-usable as it is: Tab, arrows,
// Enter) with "Off" and one entry per subtitle track, shown only when a title has subtitles.
// The viewer's choice (a language, or off) is remembered per viewer in localStorage, so the
// next title starts in it when it has that language.
//
// Cues are drawn by the browser's own WebVTT renderer (hls.js puts them on a TextTrack of the
// <video>): cue text is never HTML here, and nothing of it goes through innerHTML.
import { h } from './dom.js';

const KEY = 'streamflix.subtitles.';
const OFF = 'off';
// Apple's HLS authoring spec: SDH subtitles carry this characteristic (packager/hls.py).
const SDH = 'public.accessibility.describes-music-and-sound';

/** The remembered choice: `{ lang, sdh }`, `'off'`, or null when the viewer never chose. */
export function savedSubtitles(userId) {
  let raw = null;
  try {
    raw = localStorage.getItem(KEY + userId);
  } catch {
    return null; // storage disabled: no memory, nothing breaks
  }
  if (raw === OFF) return OFF;
  try {
    const value = JSON.parse(raw);
    return value && typeof value.lang === 'string' ? { lang: value.lang, sdh: Boolean(value.sdh) } : null;
  } catch {
    return null; // something else wrote the key: treat as never chosen
  }
}

function save(userId, value) {
  try {
    localStorage.setItem(KEY + userId, value === OFF ? OFF : JSON.stringify(value));
  } catch {
    /* storage full or disabled */
  }
}

const isSdh = (t) => String(t.characteristics || '').includes(SDH);

/** A menu label: the track's name, with forced and SDH marked when the name does not say so. */
export function subtitleLabel(t, index) {
  let name = t.name || t.lang || `Subtitles ${index + 1}`;
  if (t.forced && !/forced/i.test(name)) name += ' (forced)';
  if (isSdh(t) && !/sdh/i.test(name)) name += ' (SDH)';
  return name;
}

/** The track to start on for a remembered language: a full track (not forced-only) of that
 * language, the same SDH-ness first; -1 when the title has none in it. */
export function pickTrack(tracks, wanted) {
  const same = tracks.map((t, i) => ({ t, i })).filter(({ t }) => t.lang === wanted.lang);
  const best = same.find(({ t }) => !t.forced && isSdh(t) === wanted.sdh) || same.find(({ t }) => !t.forced) || same[0];
  return best ? best.i : -1;
}

/**
 * A subtitles menu for an hls.js player: `{ label, select }` to place in the player bar, both
 * hidden until the title's subtitle tracks are known. Names are text nodes (they come from the
 * source or an admin).
 */
export function subtitleMenu(hls, Hls, userId) {
  const select = h('select', { id: 'subtitles', class: 'select' });
  const label = h('label', { for: 'subtitles', hidden: true }, 'Subtitles ');
  select.hidden = true;
  const show = (index) => {
    hls.subtitleDisplay = index >= 0;
    hls.subtitleTrack = index; // -1: off
    select.value = String(index);
  };
  hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, (_ev, data) => {
    const tracks = data.subtitleTracks || [];
    select.replaceChildren(
      h('option', { value: '-1' }, 'Off'),
      ...tracks.map((t, i) => h('option', { value: String(i) }, subtitleLabel(t, i))),
    );
    select.hidden = tracks.length === 0;
    label.hidden = tracks.length === 0;
    // hls.js selects its default track right after this event: apply the remembered choice
    // once it has (a microtask later), so ours wins. No choice yet: hls.js's default stays
    // (a forced track the title marks DEFAULT, else off).
    queueMicrotask(() => {
      const wanted = savedSubtitles(userId);
      if (wanted === OFF) show(-1);
      else if (wanted && pickTrack(tracks, wanted) >= 0) show(pickTrack(tracks, wanted));
      else select.value = String(hls.subtitleTrack);
    });
  });
  hls.on(Hls.Events.SUBTITLE_TRACK_SWITCH, (_ev, data) => {
    select.value = String(data.id);
  });
  select.addEventListener('change', () => {
    const index = Number(select.value);
    show(index);
    const track = hls.subtitleTracks[index];
    if (index < 0) save(userId, OFF);
    else if (track && track.lang) save(userId, { lang: track.lang, sdh: isSdh(track) });
  });
  return { label, select };
}

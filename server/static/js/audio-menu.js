// The player's audio menu: a native <select> (keyboard-usable as it is: Tab, arrows, Enter),
// shown only when a title has two or more audio tracks. The viewer's choice is remembered
// per viewer in localStorage by language, so the next title starts in it when it has it.
import { h } from './dom.js';

const KEY = 'streamflix.audio.';

export function savedLanguage(userId) {
  try {
    return localStorage.getItem(KEY + userId);
  } catch {
    return null; // storage disabled: no memory, nothing breaks
  }
}

function saveLanguage(userId, lang) {
  try {
    localStorage.setItem(KEY + userId, lang);
  } catch {
    /* storage full or disabled */
  }
}

/**
 * An audio menu for an hls.js player: `{ label, select }` to place in the player bar, both
 * hidden until the tracks are known. Names are text nodes (a track name comes from the source).
 */
export function audioMenu(hls, Hls, userId) {
  const select = h('select', { id: 'audio', class: 'select' });
  const label = h('label', { for: 'audio', hidden: true }, 'Audio ');
  select.hidden = true;
  hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, (_ev, data) => {
    const tracks = data.audioTracks || [];
    select.replaceChildren(...tracks.map((t, i) => h('option', { value: String(i) }, t.name || t.lang || `Track ${i + 1}`)));
    const many = tracks.length >= 2;
    select.hidden = !many;
    label.hidden = !many;
    const wanted = savedLanguage(userId);
    const pick = wanted ? tracks.findIndex((t) => t.lang === wanted) : -1;
    if (pick >= 0 && pick !== hls.audioTrack) hls.audioTrack = pick;
    select.value = String(pick >= 0 ? pick : hls.audioTrack);
  });
  // hls.js picks its default track just after AUDIO_TRACKS_UPDATED (the menu then shows no
  // choice, and an arrow key would start from nothing): follow the switch as it starts.
  const follow = (_ev, data) => {
    select.value = String(data.id);
  };
  hls.on(Hls.Events.AUDIO_TRACK_SWITCHING, follow);
  hls.on(Hls.Events.AUDIO_TRACK_SWITCHED, follow);
  select.addEventListener('change', () => {
    const index = Number(select.value);
    hls.audioTrack = index;
    const track = hls.audioTracks[index];
    if (track && track.lang) saveLanguage(userId, track.lang);
  });
  return { label, select };
}

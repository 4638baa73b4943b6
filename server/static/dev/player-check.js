// A bare player page for diagnosing a playback URL (and for the browser tests of both player
// libraries): no app shell, no login, just the library, the <video> and a record of what
// happened in `window.check`.
const params = new URLSearchParams(location.search);
const engine = params.get('engine') || 'hls';
const src = params.get('src');
const video = document.getElementById('video');
const log = document.getElementById('log');
video.muted = true; // autoplay without a gesture

const check = {
  engine,
  ready: false,
  errors: [],
  warnings: [],
  levels: [], // [{index, id, height, bitrate}]
  renderedHeight: null, // height of the rendition the player says it is showing
  switches: 0,
  setLevel: null, // (index) -> void, ABR off
  videoCodec: null, // () -> the codecs string of the video rendition the player is on ("av01.0.04M.08")
  // Tracks, the same shape for every engine: [{index, lang, name}], and the choosers.
  audioTracks: [],
  audioIndex: -1, // the audio track the player says is selected
  setAudio: null, // (index) -> void
  textTracks: [],
  textIndex: -1, // -1: subtitles off
  setText: null, // (index | -1) -> void
  // The thumbnail the player offers for a time (DASH-IF image AdaptationSet), the same shape
  // for every engine that has one: Promise<{url, x, y, width, height} | null>.
  thumbnail: null, // (seconds) -> Promise
};
window.check = check;

function note(text) {
  log.textContent += `${new Date().toISOString().slice(11, 23)} ${text}\n`;
}

async function startHls() {
  const { default: Hls } = await import('/vendor/hls.min.mjs');
  if (!Hls.isSupported()) throw new Error('MediaSource is not available');
  const HANDLED = new Set([
    Hls.ErrorDetails.BUFFER_STALLED_ERROR,
    Hls.ErrorDetails.BUFFER_NUDGE_ON_STALL,
    Hls.ErrorDetails.BUFFER_SEEK_OVER_HOLE,
    Hls.ErrorDetails.INTERNAL_ABORTED,
  ]);
  const hls = new Hls({ enableWorker: true, capLevelToPlayerSize: false });
  check.player = hls;
  hls.on(Hls.Events.ERROR, (_e, data) => {
    note(`hls error ${data.type} ${data.details} fatal=${data.fatal}`);
    // hls.js reports the buffer briefly running dry (after a seek, on a slow machine) and a
    // request it cancelled itself (a fragment dropped for a quicker rendition, a load cut short
    // by a switch) as non-fatal "errors" it handles itself; those are kept apart from real errors.
    const handled = !data.fatal && HANDLED.has(data.details);
    (handled ? check.warnings : check.errors).push(`${data.type}:${data.details}${data.fatal ? ':fatal' : ''}`);
  });
  hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => {
    check.levels = data.levels.map((l, i) => ({ index: i, id: String(i), height: l.height, bitrate: l.bitrate }));
    check.ready = true;
    note(`levels ${check.levels.map((l) => l.height).join(',')}`);
    video.play().catch((err) => check.errors.push(`play:${err.name}`));
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_e, data) => {
    check.renderedHeight = hls.levels[data.level].height;
    check.switches += 1;
    note(`switched to ${check.renderedHeight}p`);
  });
  check.setLevel = (index) => {
    hls.currentLevel = index; // fixes the level (ABR off) and flushes the buffer ahead
  };
  check.videoCodec = () => {
    const level = hls.levels[hls.currentLevel];
    return (level && level.videoCodec) || null;
  };
  const audioList = () => {
    check.audioTracks = hls.audioTracks.map((t, i) => ({ index: i, lang: t.lang || 'und', name: t.name || '' }));
    check.audioIndex = hls.audioTrack;
  };
  hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, audioList);
  hls.on(Hls.Events.AUDIO_TRACK_SWITCHED, (_e, data) => {
    check.audioIndex = data.id;
    note(`audio track ${data.id}`);
  });
  check.setAudio = (index) => {
    hls.audioTrack = index;
  };
  hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, () => {
    check.textTracks = hls.subtitleTracks.map((t, i) => ({ index: i, lang: t.lang || 'und', name: t.name || '' }));
  });
  hls.on(Hls.Events.SUBTITLE_TRACK_SWITCH, (_e, data) => {
    check.textIndex = data.id;
  });
  check.setText = (index) => {
    hls.subtitleDisplay = index >= 0;
    hls.subtitleTrack = index;
    check.textIndex = index;
  };
  hls.loadSource(src);
  hls.attachMedia(video);
}

async function startDash() {
  const dashjs = window.dashjs;
  if (!dashjs) throw new Error('dash.js did not load');
  const player = dashjs.MediaPlayer().create();
  check.player = player;
  const events = dashjs.MediaPlayer.events;
  player.on(events.ERROR, (e) => {
    const err = e.error || {};
    note(`dash error ${err.code} ${err.message}`);
    check.errors.push(`dash:${err.code}:${err.message}`);
  });
  player.on(events.PLAYBACK_ERROR, (e) => check.errors.push(`dash-playback:${e.error && e.error.message}`));
  player.on(events.STREAM_INITIALIZED, () => {
    const reps = player.getRepresentationsByType('video');
    check.levels = reps.map((r, i) => ({ index: i, id: r.id, height: r.height, bitrate: r.bandwidth }));
    check.ready = true;
    note(`representations ${check.levels.map((l) => `${l.id}:${l.height}`).join(',')}`);
  });
  player.on(events.QUALITY_CHANGE_RENDERED, (e) => {
    if (e.mediaType !== 'video') return;
    check.renderedHeight = e.newRepresentation && e.newRepresentation.height;
    check.switches += 1;
    note(`rendered ${check.renderedHeight}p`);
  });
  check.setLevel = (index) => {
    player.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: false } } } });
    player.setRepresentationForTypeById('video', check.levels[index].id, true);
  };
  check.videoCodec = () => {
    const rep = player.getCurrentRepresentationForType('video');
    return (rep && rep.codecs) || null;
  };
  const trackOf = (t, i) => ({
    index: i,
    lang: t.lang || 'und',
    name: (t.labels && t.labels[0] && t.labels[0].text) || t.lang || '',
  });
  const dashTracks = () => {
    const audio = player.getTracksFor('audio');
    check.audioTracks = audio.map(trackOf);
    const current = player.getCurrentTrackFor('audio');
    check.audioIndex = audio.findIndex((t) => current && t.id === current.id && t.lang === current.lang);
    check.textTracks = player.getTracksFor('text').map(trackOf);
  };
  player.on(events.STREAM_INITIALIZED, dashTracks);
  player.on(events.TRACK_CHANGE_RENDERED, (e) => {
    if (e.mediaType !== 'audio') return;
    dashTracks();
    note(`audio track ${check.audioIndex}`);
  });
  check.setAudio = (index) => {
    player.setCurrentTrack(player.getTracksFor('audio')[index]);
  };
  check.setText = (index) => {
    player.enableText(index >= 0);
    if (index >= 0) player.setTextTrack(index);
    check.textIndex = index;
  };
  check.thumbnail = (time) => new Promise((resolve) => {
    player.provideThumbnail(time, (t) => resolve(t ? { url: t.url, x: t.x, y: t.y, width: t.width, height: t.height } : null));
  });
  player.initialize(video, src, true);
}

async function startShaka() {
  const shaka = window.shaka;
  if (!shaka) throw new Error('Shaka Player did not load');
  shaka.polyfill.installAll();
  if (!shaka.Player.isBrowserSupported()) throw new Error('Shaka Player: browser not supported');
  const player = new shaka.Player();
  check.player = player;
  await player.attach(video);
  player.addEventListener('error', (e) => {
    const err = e.detail || {};
    note(`shaka error ${err.category}:${err.code}`);
    check.errors.push(`shaka:${err.category}:${err.code}`);
  });
  // Shaka lists variants (video x audio); a level is a video height, an audio track a
  // language + channel count.
  const variants = () => player.getVariantTracks();
  const audioKey = (t) => `${t.language}|${t.channelsCount || ''}|${t.label || ''}`;
  const refresh = () => {
    const all = variants();
    const active = all.find((t) => t.active);
    const heights = [...new Set(all.map((t) => t.height).filter(Boolean))].sort((a, b) => b - a);
    check.levels = heights.map((h, i) => {
      const v = all.find((t) => t.height === h);
      return { index: i, id: String(v.videoId), height: h, bitrate: v.videoBandwidth || v.bandwidth };
    });
    const audios = [];
    for (const t of all) {
      if (!audios.some((a) => audioKey(a) === audioKey(t))) audios.push(t);
    }
    check.audioTracks = audios.map((t, i) => ({
      index: i,
      lang: t.language || 'und',
      name: t.label || t.language || '',
      channels: t.channelsCount || null,
    }));
    check.audioIndex = active ? audios.findIndex((a) => audioKey(a) === audioKey(active)) : -1;
    check._audios = audios;
    check.textTracks = player.getTextTracks().map((t, i) => ({ index: i, lang: t.language || 'und', name: t.label || t.language || '' }));
    if (active && active.height && active.height !== check.renderedHeight) {
      check.renderedHeight = active.height;
      check.switches += 1;
      note(`rendered ${active.height}p`);
    }
  };
  player.addEventListener('adaptation', refresh);
  player.addEventListener('variantchanged', refresh);
  player.addEventListener('trackschanged', refresh);
  check.setLevel = (index) => {
    player.configure({ abr: { enabled: false } });
    const active = variants().find((t) => t.active);
    const height = check.levels[index].height;
    const pick = variants().find((t) => t.height === height && (!active || audioKey(t) === audioKey(active)))
      || variants().find((t) => t.height === height);
    player.selectVariantTrack(pick, true);
  };
  check.videoCodec = () => {
    const active = variants().find((t) => t.active);
    return (active && active.videoCodec) || null;
  };
  check.setAudio = (index) => {
    const a = check._audios[index];
    player.selectAudioLanguage(a.language, undefined, a.channelsCount || 0);
  };
  check.setText = (index) => {
    if (index < 0) {
      player.setTextTrackVisibility(false);
    } else {
      player.selectTextTrack(player.getTextTracks()[index]);
      player.setTextTrackVisibility(true);
    }
    check.textIndex = index;
  };
  check.thumbnail = async (time) => {
    const [track] = player.getImageTracks();
    const t = track ? await player.getThumbnails(track.id, time) : null;
    return t ? { url: t.uris[0], x: t.positionX, y: t.positionY, width: t.width, height: t.height } : null;
  };
  await player.load(src);
  refresh();
  check.ready = true;
  note(`levels ${check.levels.map((l) => l.height).join(',')}`);
  video.play().catch((err) => check.errors.push(`play:${err.name}`));
}

video.addEventListener('error', () => {
  const e = video.error;
  check.errors.push(`video:${e && e.code}:${e && e.message}`);
});

if (!src) {
  note('add ?src=<playback url>&engine=hls|dash|shaka');
} else {
  const start = { hls: startHls, dash: startDash, shaka: startShaka }[engine] || startHls;
  const go = () => start().catch((err) => {
    check.errors.push(`setup:${err.message}`);
    note(`setup failed: ${err.message}`);
  });
  // dash.all.min.js and shaka-player.compiled.js are deferred classic scripts: it has run by DOMContentLoaded.
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', go);
  else go();
}

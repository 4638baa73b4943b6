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
};
window.check = check;

function note(text) {
  log.textContent += `${new Date().toISOString().slice(11, 23)} ${text}\n`;
}

async function startHls() {
  const { default: Hls } = await import('/vendor/hls.min.mjs');
  if (!Hls.isSupported()) throw new Error('MediaSource is not available');
  const STALLS = new Set([Hls.ErrorDetails.BUFFER_STALLED_ERROR, Hls.ErrorDetails.BUFFER_NUDGE_ON_STALL, Hls.ErrorDetails.BUFFER_SEEK_OVER_HOLE]);
  const hls = new Hls({ enableWorker: true, capLevelToPlayerSize: false });
  check.player = hls;
  hls.on(Hls.Events.ERROR, (_e, data) => {
    note(`hls error ${data.type} ${data.details} fatal=${data.fatal}`);
    // hls.js reports the buffer briefly running dry (after a seek, on a slow machine) as a
    // non-fatal "error" it handles itself; those are kept apart from real errors.
    const stall = !data.fatal && STALLS.has(data.details);
    (stall ? check.warnings : check.errors).push(`${data.type}:${data.details}${data.fatal ? ':fatal' : ''}`);
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
  player.initialize(video, src, true);
}

video.addEventListener('error', () => {
  const e = video.error;
  check.errors.push(`video:${e && e.code}:${e && e.message}`);
});

if (!src) {
  note('add ?src=<playback url>&engine=hls|dash');
} else {
  const start = engine === 'dash' ? startDash : startHls;
  const go = () => start().catch((err) => {
    check.errors.push(`setup:${err.message}`);
    note(`setup failed: ${err.message}`);
  });
  // dash.all.min.js is a deferred classic script: it has run by DOMContentLoaded.
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', go);
  else go();
}

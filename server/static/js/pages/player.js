// The player: hls.js over MediaSource, or native HLS where the browser has it and MSE is
// missing (Safari on iPhone); quality, audio and subtitles menus; resume from history; the
// position reported every ~10 s, on pause and on leaving; the next episode offered at the end;
// watching together in a party, with timed comments (party.js).
import { api, beacon, ApiError } from '../api.js';
import { audioMenu } from '../audio-menu.js';
import { h, formatDuration } from '../dom.js';
import { reportPosition, resumePosition } from '../history.js';
import { seekBar } from '../seek-thumbnails.js';
import { watchParty } from '../party.js';
import { nextEpisode } from '../series.js';
import { requireSignIn } from '../session.js';
import { subtitleMenu } from '../subtitle-menu.js';
import { pageTitle, message, encodingNote } from '../ui.js';

const REPORT_EVERY_MS = 10_000;
const NEXT_EPISODE_COUNTDOWN_S = 8;
const HLS_MIME = 'application/vnd.apple.mpegurl';
// hls.js loading policy for a title still being encoded: a segment not made yet is a 503 for
// a few seconds (the origin bumps its work first), so retry it more often before giving up.
const RETRY = { maxNumRetry: 8, retryDelayMs: 1000, maxRetryDelayMs: 4000 };
const PATIENT = {
  fragLoadPolicy: { default: { maxTimeToFirstByteMs: 20_000, maxLoadTimeMs: 120_000, timeoutRetry: RETRY, errorRetry: RETRY } },
};

/** Where to start: the saved position, unless it is at the very start or the very end. */
export function startPosition(saved, duration) {
  if (!(saved > 5)) return 0;
  if (duration && saved > duration - 10) return 0;
  return saved;
}

export async function render({ main, params, navigate, isCurrent }) {
  const user = await requireSignIn(navigate);
  if (!user || !isCurrent()) return;
  const title = await api('GET', `/titles/${encodeURIComponent(params.id)}`);
  if (!isCurrent()) return;
  if (title.kind === 'series') {
    navigate(`/title/${encodeURIComponent(title.id)}`, { replace: true });
    return;
  }

  const back = h('a', { class: 'back-link', href: `/title/${encodeURIComponent(title.id)}` }, '← Details');
  main.append(back, pageTitle(title.title));

  let playback;
  try {
    playback = await api('POST', `/titles/${encodeURIComponent(title.id)}/playback`, { auth: 'required' });
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) {
      main.append(message('This title is still being prepared. Try again in a few minutes.'));
      return;
    }
    throw err;
  }
  // In a party (`?party=`, also what a host's reload opens) the party's state says where and
  // whether to play (party.js): the player's own resume and autoplay would reach the party as
  // the person's seek and play, so a reload would move or start everyone's playback.
  const partyId = new URLSearchParams(location.search).get('party');
  const saved = partyId ? 0 : await resumePosition(title.id).catch(() => 0);
  if (!isCurrent()) return;
  const start = startPosition(saved, title.duration_s);

  const video = h('video', { id: 'video', controls: true, playsinline: true, preload: 'auto', 'aria-label': title.title });
  video.autoplay = !partyId;
  const quality = h('select', { id: 'quality', class: 'select' }, h('option', { value: '-1' }, 'Auto'));
  const status = h('p', { class: 'player-status', id: 'player-status', role: 'status', 'aria-live': 'polite' });
  const overlay = h('div', { class: 'next-episode', id: 'next-episode', hidden: true });
  const stage = h('div', { class: 'player-stage' }, video, overlay);
  // A download is offered only where the playback answer has one (the version has an MP4 and
  // downloads are on for the title): a plain link, so keyboard and "save link as" just work;
  // the origin's Content-Disposition names the file even where `download` is ignored (a CDN).
  const download = playback.download_url
    ? h('a', { class: 'button button-ghost button-small', id: 'download', href: playback.download_url, download: '' }, 'Download')
    : null;
  main.append(
    stage,
    h('div', { class: 'player-bar' },
      h('label', { for: 'quality' }, 'Quality '), quality, download, status),
  );
  // Seek thumbnails where the version has them: a seek bar under the video that previews
  // the moment under the pointer or the keyboard (the native controls stay for the rest).
  if (playback.thumbnails_url) stage.after(seekBar(video, playback.thumbnails_url));
  if (start) main.append(h('p', { class: 'hint', id: 'resume-note' }, `Resuming at ${formatDuration(start)}.`));
  // A playable title is still being encoded: every segment is listed, and one not made yet
  // answers 503 + Retry-After while the origin has it made first, so wait for it longer.
  const encoding = title.status === 'playable';
  if (encoding) main.append(h('p', { class: 'hint' }, encodingNote({ id: 'encoding-note' })));

  // ---- engine ------------------------------------------------------------------------
  let hls = null;
  const bar = main.querySelector('.player-bar');
  const { default: Hls } = await import('/vendor/hls.min.mjs');
  if (!isCurrent()) return;
  // Prefer hls.js wherever MediaSource exists: recent Chromium answers canPlayType(HLS)
  // "maybe" without playing fMP4 renditions the way hls.js does, and hls.js gives the quality menu.
  if (Hls.isSupported()) {
    // A title may have AV1 copies of some rungs beside H.264 (hls.js offers them only where
    // the browser decodes AV1): the menu tells the two apart.
    const av1 = (level) => String(level.videoCodec || '').startsWith('av01');
    hls = new Hls({ startPosition: start || -1, enableWorker: true, capLevelToPlayerSize: false, ...(encoding ? PATIENT : {}) });
    hls.on(Hls.Events.MANIFEST_PARSED, (_ev, data) => {
      const levels = data.levels.map((l, i) => ({ ...l, index: i })).sort((a, b) => (b.height || 0) - (a.height || 0));
      quality.replaceChildren(h('option', { value: '-1' }, 'Auto'),
        ...levels.map((l) => h('option', { value: String(l.index) },
          `${l.height ? `${l.height}p` : `Level ${l.index + 1}`}${av1(l) ? ' AV1' : ''} · ${(l.bitrate / 1e6).toFixed(1)} Mbps`)));
      if (!partyId) video.play().catch(() => { /* autoplay refused: the controls are there */ });
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_ev, data) => {
      const level = hls.levels[data.level];
      status.textContent = level && level.height
        ? `Playing ${level.height}p${av1(level) ? ' AV1' : ''}${hls.autoLevelEnabled ? ' (auto)' : ''}` : '';
    });
    let recovered = 0;
    hls.on(Hls.Events.ERROR, (_ev, data) => {
      if (!data.fatal) return;
      if (recovered++ < 2 && data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
      } else if (recovered < 3 && data.type === Hls.ErrorTypes.NETWORK_ERROR) {
        hls.startLoad();
      } else {
        status.textContent = `Playback failed (${data.details}).`;
        hls.destroy();
        hls = null;
      }
    });
    quality.addEventListener('change', () => {
      if (hls) hls.currentLevel = Number(quality.value); // -1 = automatic
    });
    const audio = audioMenu(hls, Hls, user.id);
    bar.insertBefore(audio.select, status);
    bar.insertBefore(audio.label, audio.select);
    const subtitles = subtitleMenu(hls, Hls, user.id);
    bar.insertBefore(subtitles.select, status);
    bar.insertBefore(subtitles.label, subtitles.select);
    hls.loadSource(playback.hls_url);
    hls.attachMedia(video);
  } else if (video.canPlayType(HLS_MIME)) {
    quality.disabled = true; // Safari picks the rendition itself
    video.src = playback.hls_url;
    video.addEventListener('loadedmetadata', () => {
      if (start) video.currentTime = start;
      if (!partyId) video.play().catch(() => {});
    }, { once: true });
  } else {
    main.append(message('This browser cannot play HLS video.', 'error'));
    return;
  }
  window.streamflixPlayer = { video, get hls() { return hls; } };

  // ---- watch together ------------------------------------------------------------------
  // "Watch together" starts a party; `?party=` joins one (its link); the party's state then
  // drives this video (party.js), and its comments show at their playback time.
  const together = watchParty({ video, title, user, partyId });
  main.append(together.element);
  window.streamflixParty = together;

  // ---- position reports --------------------------------------------------------------
  let started = false;
  let lastReport = 0;
  const duration = () => (Number.isFinite(video.duration) ? video.duration : title.duration_s || undefined);
  const body = () => {
    const out = { position_s: Math.round(video.currentTime * 10) / 10 };
    const d = duration();
    if (d) out.duration_s = Math.round(d * 10) / 10;
    return out;
  };
  const path = `/me/history/${encodeURIComponent(title.id)}`;
  const report = () => {
    if (!started) return; // never overwrite a saved position with 0 before playback began
    lastReport = Date.now();
    reportPosition(title.id, body());
  };
  const onPlaying = () => {
    started = true;
  };
  const onTime = () => {
    if (started && !video.paused && Date.now() - lastReport >= REPORT_EVERY_MS) report();
  };
  const onPause = () => {
    if (!video.ended) report();
  };
  const onPageHide = () => {
    if (started) beacon('PUT', path, body());
  };
  video.addEventListener('playing', onPlaying);
  video.addEventListener('timeupdate', onTime);
  video.addEventListener('pause', onPause);
  window.addEventListener('pagehide', onPageHide);

  // ---- next episode ------------------------------------------------------------------
  let countdown = null;
  const onEnded = async () => {
    report();
    if (title.kind !== 'episode' || !title.series_id) return;
    let next = null;
    try {
      next = nextEpisode(await api('GET', `/titles/${encodeURIComponent(title.series_id)}`), title);
    } catch {
      return;
    }
    if (!next || !isCurrent()) return;
    let left = NEXT_EPISODE_COUNTDOWN_S;
    const label = h('span', { class: 'next-countdown' });
    const go = h('a', { class: 'button button-primary', href: `/watch/${encodeURIComponent(next.id)}`, id: 'play-next' }, 'Play now');
    const cancel = h('button', { type: 'button', class: 'button button-ghost' }, 'Cancel');
    const paint = () => { label.textContent = `Next episode in ${left} s`; };
    paint();
    overlay.replaceChildren(h('p', {}, 'Up next: ', h('strong', {}, next.title || `Episode ${next.episode_number}`)), label, h('div', { class: 'actions' }, go, cancel));
    overlay.hidden = false;
    go.focus();
    countdown = setInterval(() => {
      left -= 1;
      paint();
      if (left <= 0) {
        clearInterval(countdown);
        navigate(`/watch/${encodeURIComponent(next.id)}`);
      }
    }, 1000);
    cancel.addEventListener('click', () => {
      clearInterval(countdown);
      overlay.hidden = true;
    });
  };
  video.addEventListener('ended', onEnded);

  return () => {
    // Leaving the page inside the app: save where we are, then free the decoder.
    report();
    clearInterval(countdown);
    together.stop();
    delete window.streamflixParty;
    window.removeEventListener('pagehide', onPageHide);
    video.removeEventListener('pause', onPause);
    if (hls) hls.destroy();
    video.removeAttribute('src');
    video.load();
    delete window.streamflixPlayer;
  };
}

// Watch together (docs/realtime.md): a "Watch together" button that starts a party and shows
// its link, joining a party from `?party=`, following the party's state on the real-time
// socket, and the timed comments shown at their playback time (text nodes only).
//
// Sync: the server's clock is estimated NTP-style (the time.pong with the smallest round
// trip of several); the target is `position + (serverNow - at) / 1000 * rate` while playing;
// drift of 50-500 ms is corrected by playing 5 % faster or slower, past 500 ms by a seek.
import { api } from './api.js';
import { h, formatDuration } from './dom.js';
import { realtimeSocket } from './realtime.js';

const PING_SAMPLES = 5;
const PING_GAP_MS = 120;
const RESYNC_CLOCK_MS = 60_000;
const CORRECT_EVERY_MS = 200;
const NUDGE_FROM_S = 0.05;
const SEEK_FROM_S = 0.5;
const NUDGE = 0.05;
const COMMENT_SHOW_S = 6;
const COMMENT_WINDOW_S = 600;

/** Where the party is at server time `now` (ms). */
export function targetPosition(state, now) {
  if (!state.playing) return state.position;
  return Math.max(0, state.position + ((now - state.at) / 1000) * state.rate);
}

/** The playback rate to play at to close `diff` seconds (target - current), or null: seek. */
export function correction(diff, rate) {
  const off = Math.abs(diff);
  if (off > SEEK_FROM_S) return null;
  if (off < NUDGE_FROM_S) return rate;
  return rate * (diff > 0 ? 1 + NUDGE : 1 - NUDGE);
}

/** The offset (server - local, ms) of the sample with the smallest round trip. */
export function bestOffset(samples) {
  let best = null;
  for (const s of samples) if (!best || s.rtt < best.rtt) best = s;
  return best ? best.offset : 0;
}

export function watchParty({ video, title, user, partyId: initialParty }) {
  const status = h('span', { class: 'party-status', id: 'party-status', role: 'status', 'aria-live': 'polite' });
  const start = h('button', { type: 'button', class: 'button button-ghost button-small', id: 'watch-together' }, 'Watch together');
  const link = h('input', { type: 'text', readonly: true, class: 'party-link', id: 'party-link', hidden: true, 'aria-label': 'Party link' });
  const comments = h('ol', { class: 'party-comments', id: 'party-comments', 'aria-label': 'Comments' });
  const input = h('input', { type: 'text', maxlength: '500', id: 'comment-input', placeholder: 'Comment at this moment', 'aria-label': 'Comment' });
  const send = h('button', { type: 'submit', class: 'button button-small' }, 'Post');
  const form = h('form', { class: 'party-comment-form', id: 'comment-form' }, input, send);
  const element = h('div', { class: 'party-bar', id: 'party-bar' }, start, link, status, comments, form);

  let partyId = initialParty || null;
  let party = null; // party.joined
  let state = null; // the last party.state
  let samples = [];
  let offset = 0;
  let stalled = false;
  let applying = 0; // our own play/pause/seek in flight: their events are not the person's
  let holdUntil = 0; // a local action was sent: do not undo it before the party's answer
  const timers = [];
  let timed = []; // comments by position, shown when playback reaches them

  const serverNow = () => Date.now() + offset;
  const mayDrive = () => party && (party.control === 'all' || party.host === user.id);
  const socket = realtimeSocket({ onMessage: (msg) => onMessage(msg) });
  const sendMsg = (msg) => socket.send(msg);

  function showLink() {
    const url = new URL(`/watch/${encodeURIComponent(title.id)}?party=${encodeURIComponent(partyId)}`, location.href);
    link.value = url.href;
    link.hidden = false;
    start.hidden = true;
    const here = new URL(location.href);
    if (here.searchParams.get('party') !== partyId) {
      here.searchParams.set('party', partyId);
      history.replaceState(history.state, '', here.pathname + here.search);
    }
  }

  // ---- clock --------------------------------------------------------------------------
  function syncClock() {
    samples = [];
    for (let i = 0; i < PING_SAMPLES; i++) timers.push(setTimeout(() => sendMsg({ type: 'time.ping', t0: Date.now() }), i * PING_GAP_MS));
  }
  function onPong(msg) {
    const t1 = Date.now();
    samples.push({ rtt: t1 - msg.t0, offset: msg.server - (msg.t0 + t1) / 2 });
    offset = bestOffset(samples);
  }

  // ---- following the party -------------------------------------------------------------
  async function own(fn) {
    applying += 1;
    try {
      await fn();
    } catch {
      /* autoplay refused: the person presses play */
    } finally {
      setTimeout(() => { applying -= 1; }, 50);
    }
  }

  function correct() {
    if (!state || Date.now() < holdUntil) return;
    // our stall in progress: the player is fetching, the next correction seeks if need be; a
    // paused player is not stalled, whatever it said when the party paused it
    if (stalled && state.playing && !video.paused) return;
    const target = targetPosition(state, serverNow());
    if (state.playing && video.paused) own(() => video.play());
    if (!state.playing && !video.paused) own(() => video.pause());
    const diff = target - video.currentTime;
    if (!state.playing) {
      if (Math.abs(diff) > NUDGE_FROM_S) own(() => { video.currentTime = target; });
      return;
    }
    const rate = correction(diff, state.rate);
    if (rate === null) {
      own(() => { video.currentTime = target + 0.05; }); // a little ahead: the seek itself takes time
      video.playbackRate = state.rate;
    } else if (video.playbackRate !== rate) {
      video.playbackRate = rate;
    }
  }

  function onState(msg) {
    if (state && msg.seq < state.seq) return;
    state = msg;
    holdUntil = 0;
    status.textContent = `${state.playing ? 'Playing' : 'Paused'} together at ${formatDuration(targetPosition(state, serverNow()))}`;
    correct();
  }

  function control(action, extra = {}) {
    if (!partyId || !mayDrive()) {
      correct(); // not ours to drive: back to the party's position
      return;
    }
    holdUntil = Date.now() + 1000;
    sendMsg({ type: 'party.control', party: partyId, action, position: Math.max(0, video.currentTime), ...extra });
  }

  video.addEventListener('play', () => {
    if (applying || !state || state.playing) return;
    control('play');
  });
  video.addEventListener('pause', () => {
    if (applying || !state || !state.playing || video.ended) return;
    control('pause');
  });
  video.addEventListener('seeking', () => {
    if (applying || !state) return;
    if (Math.abs(targetPosition(state, serverNow()) - video.currentTime) < 1) return;
    control('seek');
  });
  video.addEventListener('ratechange', () => {
    if (!state) return;
    const r = video.playbackRate;
    const ours = [state.rate, state.rate * (1 + NUDGE), state.rate * (1 - NUDGE)].some((x) => Math.abs(x - r) < 1e-6);
    if (!ours) control('rate', { rate: r });
  });
  video.addEventListener('waiting', () => {
    // a seek's own wait for data is not a stall: the next correction takes care of it
    if (!partyId || stalled || video.seeking || !state || !state.playing) return;
    stalled = true;
    sendMsg({ type: 'party.stalled', party: partyId, stalled: true, position: video.currentTime });
  });
  // the data is there again: playing, or (paused by the party meanwhile) able to play
  const unstall = () => {
    if (!stalled) return;
    stalled = false;
    sendMsg({ type: 'party.stalled', party: partyId, stalled: false, position: video.currentTime });
  };
  video.addEventListener('playing', unstall);
  video.addEventListener('canplay', unstall);

  // ---- comments -----------------------------------------------------------------------
  function commentItem(c) {
    return h('li', { class: 'party-comment', dataset: { id: String(c.id), position: String(c.position) } },
      h('time', {}, formatDuration(c.position)), ' ', h('span', { class: 'party-comment-text' }, c.body));
  }
  function addTimed(c) {
    if (timed.some((t) => t.id === c.id)) return;
    timed.push(c);
    timed.sort((a, b) => a.position - b.position || a.id - b.id);
  }
  function paintComments() {
    const now = video.currentTime;
    const due = timed.filter((c) => c.position <= now && c.position > now - COMMENT_SHOW_S);
    const ids = due.map((c) => String(c.id)).join(',');
    if (comments.dataset.ids !== ids) {
      comments.dataset.ids = ids;
      comments.replaceChildren(...due.map(commentItem));
    }
  }
  let loadedTo = -1;
  async function loadComments() {
    const from = Math.max(0, Math.floor(video.currentTime));
    if (loadedTo >= from + COMMENT_WINDOW_S / 2) return;
    loadedTo = from + COMMENT_WINDOW_S;
    try {
      const page = await api('GET', `/titles/${encodeURIComponent(title.id)}/comments`, { query: { from, to: loadedTo }, auth: 'required' });
      page.items.forEach(addTimed);
    } catch {
      loadedTo = -1;
    }
  }
  video.addEventListener('timeupdate', () => { paintComments(); loadComments(); });
  video.addEventListener('seeked', () => { loadedTo = -1; loadComments(); });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = input.value;
    if (!body.trim()) return;
    try {
      const c = await api('POST', `/titles/${encodeURIComponent(title.id)}/comments`, {
        body: { body, position: Math.round(video.currentTime * 1000) / 1000, ...(partyId ? { party: partyId } : {}) },
        auth: 'required',
      });
      addTimed(c);
      input.value = '';
      paintComments();
    } catch (err) {
      status.textContent = err.message || 'Could not post the comment.';
    }
  });

  // ---- the socket ---------------------------------------------------------------------
  function onMessage(msg) {
    if (msg.type === 'ready') {
      syncClock();
      if (partyId) sendMsg({ type: 'party.join', party: partyId });
    } else if (msg.type === 'time.pong') {
      onPong(msg);
    } else if (msg.type === 'party.joined' && msg.party === partyId) {
      party = msg;
      element.dataset.party = partyId;
      showLink();
    } else if (msg.type === 'party.state' && msg.party === partyId) {
      onState(msg);
    } else if (msg.type === 'party.members' && msg.party === partyId && party) {
      party.members = msg.members;
    } else if (msg.type === 'party.comment' && msg.party === partyId) {
      addTimed(msg.comment);
    } else if (msg.type === 'party.comment_deleted' && msg.party === partyId) {
      timed = timed.filter((c) => c.id !== msg.id);
      comments.dataset.ids = '';
      paintComments();
    } else if (msg.type === 'party.ended' && msg.party === partyId) {
      status.textContent = 'The party has ended.';
      partyId = null;
      party = null;
      state = null;
      video.playbackRate = 1;
      link.hidden = true;
      start.hidden = false;
    } else if (msg.type === 'error' && msg.party && msg.party === partyId) {
      status.textContent = msg.message;
    }
  }

  start.addEventListener('click', async () => {
    try {
      const created = await api('POST', '/parties', { body: { title_id: title.id }, auth: 'required' });
      partyId = created.id;
      sendMsg({ type: 'party.join', party: partyId });
    } catch (err) {
      status.textContent = err.message || 'Could not start a party.';
    }
  });

  const loop = setInterval(correct, CORRECT_EVERY_MS);
  const clock = setInterval(syncClock, RESYNC_CLOCK_MS);
  socket.start();
  loadComments();

  const handle = {
    element,
    get party() { return partyId; },
    get offset() { return offset; },
    get state() { return state; },
    target() { return state ? targetPosition(state, serverNow()) : null; },
    stop() {
      clearInterval(loop);
      clearInterval(clock);
      for (const t of timers) clearTimeout(t);
      socket.stop();
    },
  };
  return handle;
}

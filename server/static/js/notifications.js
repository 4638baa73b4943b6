// The notifications bell in the header: the unread count, a list (text nodes only), "Mark all
// read"; fed by GET /api/v1/me/notifications and kept live by the real-time socket
// (/api/v1/ws, docs/realtime.md), which reconnects with backoff.
import { accessToken, api, isSignedIn } from './api.js';
import { h } from './dom.js';

const LIST_LIMIT = 20;
const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const CLOSE_UNAUTHORIZED = 4401;

export function notificationBell() {
  const count = h('span', { class: 'bell-count', id: 'bell-count', hidden: true }, '0');
  const button = h(
    'button',
    { type: 'button', class: 'bell button-ghost', id: 'bell', 'aria-expanded': 'false', 'aria-controls': 'bell-panel' },
    h('span', { class: 'bell-icon', 'aria-hidden': 'true' }),
    h('span', { class: 'visually-hidden' }, 'Notifications'),
    count,
  );
  const list = h('ol', { class: 'bell-list', id: 'bell-list' });
  const markAll = h('button', { type: 'button', class: 'button button-ghost', id: 'bell-read-all' }, 'Mark all read');
  const state = h('p', { class: 'bell-state', id: 'bell-state', hidden: true }, '');
  const panel = h('div', { class: 'bell-panel', id: 'bell-panel', hidden: true },
    h('div', { class: 'bell-head' }, h('strong', {}, 'Notifications'), markAll), state, list);
  const element = h('div', { class: 'bell-slot' }, button, panel);

  let socket = null;
  let backoff = BACKOFF_FIRST_MS;
  let retry = null;
  let stopped = false;
  let paused = false;

  function setUnread(n) {
    count.textContent = String(n);
    count.hidden = n <= 0;
    button.setAttribute('aria-label', `Notifications, ${n} unread`);
  }

  function item(n) {
    return h('li', { class: ['bell-item', n.read ? '' : 'unread'], dataset: { id: String(n.id), kind: n.kind } },
      h('span', { class: 'bell-text' }, n.text),
      h('time', { datetime: n.created_at }, new Date(n.created_at).toLocaleString()));
  }

  async function load() {
    if (!isSignedIn()) return;
    try {
      const page = await api('GET', '/me/notifications', { query: { limit: LIST_LIMIT }, auth: 'required' });
      list.replaceChildren(...page.items.map(item));
      setUnread(page.unread);
      if (!page.items.length) list.replaceChildren(h('li', { class: 'bell-empty' }, 'Nothing yet.'));
    } catch {
      /* offline: keep what is shown */
    }
  }

  function showState(text) {
    state.textContent = text;
    state.hidden = !text;
  }

  function onMessage(msg) {
    if (msg.type === 'notification') {
      const empty = list.querySelector('.bell-empty');
      if (empty) empty.remove();
      list.prepend(item(msg.notification));
      while (list.children.length > LIST_LIMIT) list.lastElementChild.remove();
      setUnread(Number(count.textContent) + 1);
    } else if (msg.type === 'unread') {
      setUnread(msg.count);
      if (msg.count === 0) for (const li of list.querySelectorAll('.unread')) li.classList.remove('unread');
    } else if (msg.type === 'status') {
      if (msg.realtime === 'unavailable') {
        paused = true;
        showState('Live updates paused; reconnecting…');
      } else if (paused) {
        paused = false;
        showState('');
        load(); // catch up on what was published meanwhile
      }
    }
  }

  async function connect() {
    retry = null;
    if (stopped || !isSignedIn()) return;
    const token = await accessToken();
    if (!token) return;
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/ws`;
    const ws = new WebSocket(url);
    socket = ws;
    ws.addEventListener('open', () => ws.send(JSON.stringify({ type: 'auth', token })));
    ws.addEventListener('message', (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg.type === 'ready') {
        if (backoff > BACKOFF_FIRST_MS) load(); // a reconnect: catch up on what was missed
        backoff = BACKOFF_FIRST_MS;
        element.dataset.live = 'yes';
      }
      onMessage(msg);
    });
    ws.addEventListener('close', (ev) => {
      element.dataset.live = 'no';
      if (socket !== ws || stopped) return;
      socket = null;
      // A revoked session stays out (the API's 401 takes the page to the login); an expired
      // token is refreshed by accessToken() on the next try.
      if (ev.code === CLOSE_UNAUTHORIZED && ev.reason === 'session revoked') return;
      const wait = backoff * (0.5 + Math.random() / 2);
      backoff = Math.min(BACKOFF_MAX_MS, backoff * 2);
      retry = setTimeout(connect, wait);
    });
  }

  button.addEventListener('click', () => {
    panel.hidden = !panel.hidden;
    button.setAttribute('aria-expanded', String(!panel.hidden));
    if (!panel.hidden) load();
  });
  markAll.addEventListener('click', async () => {
    try {
      const res = await api('POST', '/me/notifications/read', { body: { all: true }, auth: 'required' });
      setUnread(res.unread);
      for (const li of list.querySelectorAll('.unread')) li.classList.remove('unread');
    } catch {
      /* keep the badge: the next load corrects it */
    }
  });

  return {
    element,
    start() {
      stopped = false;
      setUnread(0);
      load();
      connect();
    },
    stop() {
      stopped = true;
      if (retry) clearTimeout(retry);
      if (socket) socket.close(1000);
      socket = null;
    },
  };
}

// The notifications bell in the header: the unread count, a list (text nodes only), "Mark all
// read"; fed by GET /api/v1/me/notifications and kept live by the real-time socket
// (/api/v1/ws, docs/realtime.md), which reconnects with backoff.
import { api, isSignedIn } from './api.js';
import { h } from './dom.js';
import { realtimeSocket } from './realtime.js';

const LIST_LIMIT = 20;

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

  const socket = realtimeSocket({
    onMessage(msg, { again }) {
      if (again) load(); // a reconnect: catch up on what was missed
      onMessage(msg);
    },
    onLive(live) {
      element.dataset.live = live ? 'yes' : 'no';
    },
  });

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
      setUnread(0);
      load();
      socket.start();
    },
    stop() {
      socket.stop();
    },
  };
}

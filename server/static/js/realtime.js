// A connection to the real-time socket (/api/v1/ws, docs/realtime.md) for one feature of the
// page (the notifications bell, a watch party): authenticates with the access token in its
// first message (never in the URL), hands every message on, and reconnects with backoff
// (1 s doubling to 30 s, jittered) until stopped; a session revoked by the server stays out.
import { accessToken, isSignedIn } from './api.js';

const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const CLOSE_UNAUTHORIZED = 4401;

/**
 * `onMessage(msg, { again })`: every message; `again` is true on the `ready` of a reconnect
 * (a feature catches up on what it missed). `onLive(live)`: authenticated, or closed.
 */
export function realtimeSocket({ onMessage, onLive = () => {} }) {
  let socket = null;
  let backoff = BACKOFF_FIRST_MS;
  let retry = null;
  let stopped = true;

  async function connect() {
    retry = null;
    if (stopped || !isSignedIn()) return;
    const token = await accessToken();
    if (!token || stopped) return;
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/api/v1/ws`);
    socket = ws;
    ws.addEventListener('open', () => ws.send(JSON.stringify({ type: 'auth', token })));
    ws.addEventListener('message', (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      const again = msg.type === 'ready' && backoff > BACKOFF_FIRST_MS;
      if (msg.type === 'ready') {
        backoff = BACKOFF_FIRST_MS;
        onLive(true);
      }
      onMessage(msg, { again });
    });
    ws.addEventListener('close', (ev) => {
      if (socket !== ws) return;
      socket = null;
      onLive(false);
      if (stopped) return;
      // A revoked session stays out (the API's 401 takes the page to the login); an expired
      // token is refreshed by accessToken() on the next try.
      if (ev.code === CLOSE_UNAUTHORIZED && ev.reason === 'session revoked') return;
      const wait = backoff * (0.5 + Math.random() / 2);
      backoff = Math.min(BACKOFF_MAX_MS, backoff * 2);
      retry = setTimeout(connect, wait);
    });
  }

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      connect();
    },
    stop() {
      stopped = true;
      if (retry) clearTimeout(retry);
      retry = null;
      if (socket) {
        socket.close(1000);
        onLive(false);
      }
      socket = null;
    },
    send(msg) {
      if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(msg));
    },
  };
}

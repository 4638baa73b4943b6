// The API client: bearer tokens, silent refresh before expiry, one JSON error shape.
//
// Tokens live in localStorage so a reload keeps the viewer signed in. A refresh token works
// once (the server rotates it), so two tabs must not both spend it: the refresh runs under a
// Web Lock and re-reads storage inside it, adopting a pair another tab already obtained.

const STORAGE_KEY = 'streamflix.auth';
const API = '/api/v1';
const listeners = new Set();
let refreshTimer = null;
let inflightRefresh = null;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || 'http_error';
  }
}

function load() {
  try {
    return JSON.parse(localStorage.getItem(STORAGE_KEY)) || null;
  } catch {
    return null;
  }
}

function save(tokens) {
  if (tokens) localStorage.setItem(STORAGE_KEY, JSON.stringify(tokens));
  else localStorage.removeItem(STORAGE_KEY);
  scheduleRefresh();
  for (const fn of listeners) fn(tokens);
}

function fromLoginAnswer(body) {
  const ttl = Number(body.expires_in) || 900;
  return {
    access_token: body.access_token,
    refresh_token: body.refresh_token,
    expires_in: ttl,
    expires_at: Date.now() + ttl * 1000,
  };
}

/** Refresh this long before expiry: a minute, or a quarter of a short token's life. */
function margin(tokens) {
  return Math.min(60_000, (tokens.expires_in || 900) * 250);
}

export function isSignedIn() {
  return !!load();
}

export function onAuthChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Another tab signing in or out, or refreshing, changes our view too. */
window.addEventListener('storage', (ev) => {
  if (ev.key !== STORAGE_KEY) return;
  scheduleRefresh();
  for (const fn of listeners) fn(load());
});

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const tokens = load();
  if (!tokens) return;
  const wait = Math.max(1000, tokens.expires_at - margin(tokens) - Date.now());
  refreshTimer = setTimeout(() => refresh().catch(() => {}), wait);
}

async function withLock(fn) {
  if (navigator.locks && navigator.locks.request) {
    return navigator.locks.request('streamflix-token-refresh', fn);
  }
  return fn();
}

/** Exchange the refresh token for a new pair; shared by concurrent callers. */
export function refresh() {
  if (!inflightRefresh) {
    const before = load();
    inflightRefresh = withLock(async () => {
      const current = load();
      if (!current) throw new ApiError(401, 'signed_out', 'signed out');
      if (before && current.refresh_token !== before.refresh_token &&
          current.expires_at - margin(current) > Date.now()) {
        return current; // another tab already refreshed
      }
      const res = await fetch(`${API}/auth/refresh`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ refresh_token: current.refresh_token }),
      });
      if (!res.ok) {
        const err = await errorFrom(res);
        if (res.status === 401 || res.status === 400) {
          endSession(err.code === 'session_revoked' ? 'revoked' : 'expired');
        }
        throw err;
      }
      const tokens = fromLoginAnswer(await res.json());
      save(tokens);
      return tokens;
    }).finally(() => {
      inflightRefresh = null;
    });
  }
  return inflightRefresh;
}

async function errorFrom(res) {
  let code = '';
  let message = '';
  try {
    const body = await res.json();
    code = body?.error?.code || '';
    message = body?.error?.message || '';
  } catch {
    /* not JSON */
  }
  return new ApiError(res.status, code, message || res.statusText);
}

/** The session is over (revoked elsewhere, or the refresh token expired): back to login. */
export function endSession(reason) {
  save(null);
  window.dispatchEvent(new CustomEvent('streamflix:session-ended', { detail: { reason } }));
}

export async function accessToken() {
  let tokens = load();
  if (!tokens) return null;
  if (tokens.expires_at - margin(tokens) <= Date.now()) {
    try {
      tokens = await refresh();
    } catch {
      return null;
    }
  }
  return tokens.access_token;
}

/**
 * api('GET', '/titles', {query, body, auth}) -> parsed JSON (null for 204).
 * auth: 'optional' (default: send the bearer when signed in), 'required', 'none'.
 */
export async function api(method, path, { query, body, auth = 'optional', keepalive = false, signal } = {}) {
  const url = new URL(API + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    const headers = { Accept: 'application/json' };
    let token = null;
    if (auth !== 'none') {
      token = await accessToken();
      if (token) headers.Authorization = `Bearer ${token}`;
      else if (auth === 'required') throw new ApiError(401, 'signed_out', 'Please sign in.');
    }
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      keepalive,
      signal,
    });
    if (res.ok) {
      if (res.status === 204) return null;
      const type = res.headers.get('Content-Type') || '';
      return type.includes('json') ? res.json() : res.text();
    }
    const err = await errorFrom(res);
    if (res.status === 401 && token) {
      if (err.code === 'session_revoked') {
        endSession('revoked');
        throw err;
      }
      if (attempt === 0) {
        try {
          await refresh(); // expired or rotated key: one silent retry
          continue;
        } catch {
          throw err;
        }
      }
    }
    throw err;
  }
  throw new ApiError(401, 'unauthorized', 'not signed in');
}

export async function login(email, password) {
  const body = await api('POST', '/auth/login', { body: { email, password }, auth: 'none' });
  save(fromLoginAnswer(body));
}

export async function register(email, password, displayName) {
  const body = { email, password };
  if (displayName) body.display_name = displayName;
  return api('POST', '/auth/register', { body, auth: 'none' });
}

export async function logout() {
  try {
    if (load()) await api('POST', '/auth/logout', { auth: 'required' });
  } catch {
    /* signing out locally is what matters */
  } finally {
    save(null);
  }
}

/** A fire-and-forget call that survives the page going away (pagehide): sendBeacon cannot
 * carry a bearer header, fetch with keepalive can. */
export function beacon(method, path, body) {
  const tokens = load();
  if (!tokens) return;
  try {
    fetch(API + path, {
      method,
      keepalive: true,
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${tokens.access_token}` },
      body: JSON.stringify(body),
    }).catch(() => {});
  } catch {
    /* the page is going away */
  }
}

scheduleRefresh();

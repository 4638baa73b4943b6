// Service worker: caches the app shell only, so the app opens offline or on a flaky network.
// It never caches media (/stream/) or API answers (/api/): those carry personal data and
// short-lived tokens, and segments are the CDN's job.
const VERSION = 'streamflix-shell-v7';
const SHELL = [
  '/',
  '/manifest.webmanifest',
  '/static/css/app.css',
  '/static/icons/icon.svg',
  '/static/icons/bell.svg',
  '/static/js/app.js',
  '/static/js/api.js',
  '/static/js/dom.js',
  '/static/js/router.js',
  '/static/js/session.js',
  '/static/js/series.js',
  '/static/js/favorite.js',
  '/static/js/history.js',
  '/static/js/pages/notfound.js',
  '/static/js/ui.js',
  '/static/js/searchbox.js',
  '/static/js/notifications.js',
  '/static/js/party.js',
  '/static/js/realtime.js',
  '/static/js/seek-thumbnails.js',
  '/static/js/pages/home.js',
  '/static/js/pages/search.js',
  '/static/js/pages/title.js',
  '/static/js/pages/player.js',
  '/static/js/pages/favorites.js',
  '/static/js/pages/auth.js',
  '/static/js/pages/profile.js',
  '/static/js/pages/account-links.js',
  '/static/js/pages/admin.js',
  '/static/js/admin-access.js',
  '/static/js/admin-upload.js',
  '/static/js/audio-menu.js',
  '/static/js/subtitle-menu.js',
];
const SHELL_PATHS = new Set(SHELL);

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches.open(VERSION).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches.keys()
      .then((names) => Promise.all(names.filter((n) => n !== VERSION).map((n) => caches.delete(n))))
      .then(() => self.clients.claim()),
  );
});

// Paths the server never answers with the shell (server/web.py RESERVED_*): a navigation to
// one of them (/healthz, a vendor file opened in a tab) must not be stored as the shell.
const NOT_SHELL_PREFIXES = ['/api/', '/stream/', '/static/', '/vendor/'];
const NOT_SHELL_EXACT = new Set(['/api', '/stream', '/healthz', '/readyz', '/metrics', '/sw.js', '/manifest.webmanifest', '/favicon.ico']);

function isShell(url, request) {
  if (url.origin !== self.location.origin) return false;
  if (url.pathname.startsWith('/api/') || url.pathname.startsWith('/stream/')) return false;
  if (SHELL_PATHS.has(url.pathname)) return true;
  return request.mode === 'navigate' && !NOT_SHELL_EXACT.has(url.pathname) &&
    !NOT_SHELL_PREFIXES.some((prefix) => url.pathname.startsWith(prefix));
}

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (!isShell(url, request)) return; // the network, untouched
  // Network first (a deploy shows at once), the cached shell when offline. Navigations to any
  // client route fall back to the cached index.html, which routes on the client.
  const key = SHELL_PATHS.has(url.pathname) ? url.pathname : '/';
  event.respondWith(
    fetch(request)
      .then((response) => {
        const html = (response.headers.get('Content-Type') || '').startsWith('text/html');
        if (response.ok && response.type === 'basic' && (key !== '/' || html)) {
          const copy = response.clone();
          caches.open(VERSION).then((cache) => cache.put(key, copy));
        }
        return response;
      })
      .catch(() => caches.match(key).then((hit) => hit || Response.error())),
  );
});

// Boot: routes, header (search, account), session-ended handling, service worker.
import { isSignedIn, logout, onAuthChange } from './api.js';
import { h } from './dom.js';
import { route, setNotFound, navigate, render, interceptLinks, afterRender } from './router.js';
import { notificationBell } from './notifications.js';
import { searchBox } from './searchbox.js';
import { currentUser } from './session.js';
import { flash, hideFlash } from './ui.js';

route('/', () => import('./pages/home.js'));
route('/search', () => import('./pages/search.js'));
route('/title/:id', () => import('./pages/title.js'));
route('/watch/:id', () => import('./pages/player.js'));
route('/favorites', () => import('./pages/favorites.js'));
route('/login', () => import('./pages/auth.js').then((m) => ({ render: m.renderLogin })));
route('/register', () => import('./pages/auth.js').then((m) => ({ render: m.renderRegister })));
route('/profile', () => import('./pages/profile.js'));
route('/forgot-password', () => import('./pages/account-links.js').then((m) => ({ render: m.renderForgot })));
route('/reset-password', () => import('./pages/account-links.js').then((m) => ({ render: m.renderReset })));
route('/verify-email', () => import('./pages/account-links.js').then((m) => ({ render: m.renderVerify })));
route('/admin', () => import('./pages/admin.js'));
setNotFound(() => import('./pages/notfound.js'));

const search = searchBox({ navigate });
document.getElementById('search-slot').append(search.element);
const bell = notificationBell();

async function renderAccount() {
  const slot = document.getElementById('account');
  const adminLink = document.querySelector('[data-auth="admin"]');
  const myList = document.querySelector('[data-auth="in"]');
  if (!isSignedIn()) {
    bell.stop();
    adminLink.hidden = true;
    myList.hidden = true;
    slot.replaceChildren(
      h('a', { href: '/login', class: 'button button-ghost' }, 'Sign in'),
      h('a', { href: '/register', class: 'button' }, 'Register'),
    );
    return;
  }
  myList.hidden = false;
  let user = null;
  try {
    user = await currentUser();
  } catch {
    /* offline: keep the signed-in shell */
  }
  adminLink.hidden = !(user && user.role === 'admin');
  const name = user ? (user.display_name || user.email) : 'Account';
  const signOut = h('button', { type: 'button', class: 'button button-ghost', id: 'sign-out' }, 'Sign out');
  signOut.addEventListener('click', async () => {
    signOut.disabled = true;
    await logout();
    flash('You are signed out.');
    navigate('/');
  });
  slot.replaceChildren(bell.element, h('a', { href: '/profile', class: 'account-name', id: 'account-link' }, name), signOut);
  bell.stop();
  bell.start();
}

onAuthChange(() => renderAccount());

window.addEventListener('streamflix:session-ended', (ev) => {
  const reason = ev.detail && ev.detail.reason === 'revoked' ? 'revoked' : 'expired';
  hideFlash(); // the login page says why; a stale "Welcome back." would contradict it
  if (location.pathname === '/login') return;
  const next = location.pathname + location.search;
  navigate(`/login?reason=${reason}&next=${encodeURIComponent(next)}`, { replace: true });
});

afterRender((ctx) => {
  for (const a of document.querySelectorAll('.site-nav a')) {
    const path = new URL(a.href).pathname;
    if (path === location.pathname) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (location.pathname === '/search') search.setValue(ctx.query.get('q') || '');
  // Move focus to the new page's heading so keyboard and screen-reader users land on it.
  const heading = document.querySelector('#main h1');
  if (heading && document.activeElement && !document.activeElement.closest('.search') &&
      !document.activeElement.closest('#main form')) {
    heading.focus({ preventScroll: true });
  }
});

// Mailed links are /#/reset-password?token=… and /#/verify-email?token=…: move them onto
// their page, keeping the token in the fragment so it never reaches a server.
// A link opened while the app is loaded at "/" only changes the fragment: handle it then too.
function openMailedLink() {
  const mailed = /^#\/(reset-password|verify-email)\?(.*)$/.exec(location.hash);
  if (mailed) history.replaceState(null, '', `/${mailed[1]}#${mailed[2]}`);
  return Boolean(mailed);
}
openMailedLink();
window.addEventListener('hashchange', () => {
  if (openMailedLink()) render();
});

interceptLinks();
renderAccount();
render();

if ('serviceWorker' in navigator && location.protocol !== 'file:') {
  window.addEventListener('load', () => {
    navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch((err) => console.warn('service worker', err));
  });
}

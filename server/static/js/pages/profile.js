// Profile: who you are, and the devices signed in to this account (with sign-out per device).
import { api, logout } from '../api.js';
import { h, formatDate } from '../dom.js';
import { requireSignIn } from '../session.js';
import { pageTitle, message, flash } from '../ui.js';

/** "Chrome on Linux" from a User-Agent string; the raw string stays in the title attribute. */
export function describeAgent(ua) {
  if (!ua) return 'Unknown device';
  const browser = /Edg\//.test(ua) ? 'Edge' : /OPR\//.test(ua) ? 'Opera' : /Firefox\//.test(ua) ? 'Firefox'
    : /(Chrome|Chromium|HeadlessChrome)\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari'
    : /curl|python|aiohttp|httpx/i.test(ua) ? 'Script' : 'Browser';
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Mac OS X/.test(ua) ? 'macOS'
    : /Windows/.test(ua) ? 'Windows' : /Linux/.test(ua) ? 'Linux' : '';
  return os ? `${browser} on ${os}` : browser;
}

export async function render({ main, navigate, isCurrent }) {
  const user = await requireSignIn(navigate);
  if (!user || !isCurrent()) return;
  main.append(pageTitle('Profile'));
  main.append(h('section', { class: 'panel', 'aria-labelledby': 'account-heading' },
    h('h2', { id: 'account-heading' }, 'Account'),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Name'), h('dd', {}, user.display_name || '—'),
      h('dt', {}, 'Email'), h('dd', { id: 'profile-email' }, user.email),
      h('dt', {}, 'Role'), h('dd', {}, user.role || 'viewer'),
      user.created_at ? [h('dt', {}, 'Member since'), h('dd', {}, formatDate(user.created_at))] : null)));

  const devices = h('section', { class: 'panel', 'aria-labelledby': 'devices-heading' }, h('h2', { id: 'devices-heading' }, 'Signed-in devices'));
  main.append(devices);
  let body;
  try {
    body = await api('GET', '/me/sessions', { auth: 'required' });
  } catch (err) {
    devices.append(message(`Could not load your devices: ${err.message}`, 'error'));
    return;
  }
  if (!isCurrent()) return;
  const items = body?.items || body?.sessions || [];
  const table = h('table', { class: 'table table-stack', id: 'sessions' },
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Device'), h('th', { scope: 'col' }, 'IP address'),
      h('th', { scope: 'col' }, 'Signed in'), h('th', { scope: 'col' }, 'Last active'), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
    h('tbody', {}, items.map((s) => {
      const button = h('button', { type: 'button', class: 'button button-ghost button-small' }, s.current ? 'Sign out' : 'Sign out device');
      button.addEventListener('click', async () => {
        button.disabled = true;
        try {
          if (s.current) {
            await logout();
            navigate('/login');
            return;
          }
          await api('DELETE', `/me/sessions/${encodeURIComponent(s.id)}`, { auth: 'required' });
          button.closest('tr').remove();
          flash('That device is signed out.');
        } catch (err) {
          flash(`Could not sign that device out: ${err.message}`, 'error');
          button.disabled = false;
        }
      });
      return h('tr', { class: s.current ? 'current' : null },
        h('td', { title: s.user_agent || '' }, describeAgent(s.user_agent), s.current ? h('span', { class: 'badge' }, 'this device') : null),
        h('td', { dataset: { label: 'IP address' } }, s.ip || '—'),
        h('td', { dataset: { label: 'Signed in' } }, formatDate(s.created_at)),
        h('td', { dataset: { label: 'Last active' } }, formatDate(s.last_seen_at || s.last_used_at)),
        h('td', {}, button));
    })));
  devices.append(h('div', { class: 'table-wrap' }, table));
}

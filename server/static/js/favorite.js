// The favourite toggle: a real button with aria-pressed, kept in sync with /me/favorites.
import { api, isSignedIn } from './api.js';
import { h } from './dom.js';
import { flash } from './ui.js';

export async function isFavorite(titleId) {
  if (!isSignedIn()) return false;
  // The API's largest page, so a long list does not show a favourite as "+ My list".
  const body = await api('GET', '/me/favorites', { query: { limit: 100 }, auth: 'required' });
  return (body?.items || []).some((t) => t.id === titleId);
}

export function favoriteButton(title, initial, { navigate }) {
  let on = !!initial;
  const button = h('button', { type: 'button', class: 'button button-ghost favorite', id: 'favorite-toggle' });
  const paint = () => {
    button.setAttribute('aria-pressed', String(on));
    button.textContent = on ? '✓ In my list' : '+ My list';
  };
  paint();
  let busy = false;
  button.addEventListener('click', async () => {
    if (!isSignedIn()) {
      navigate(`/login?next=${encodeURIComponent(location.pathname)}`);
      return;
    }
    if (busy) return;
    // Not `disabled`: a disabled button drops keyboard focus to <body>.
    busy = true;
    button.setAttribute('aria-busy', 'true');
    try {
      await api(on ? 'DELETE' : 'PUT', `/me/favorites/${encodeURIComponent(title.id)}`, { auth: 'required' });
      on = !on;
      paint();
    } catch (err) {
      flash(`Could not update your list: ${err.message}`, 'error');
    } finally {
      busy = false;
      button.removeAttribute('aria-busy');
    }
  });
  return button;
}

// My list: the viewer's favourites.
import { api } from '../api.js';
import { h } from '../dom.js';
import { requireSignIn } from '../session.js';
import { card, grid, pageTitle, message } from '../ui.js';

export async function render({ main, navigate, isCurrent }) {
  const user = await requireSignIn(navigate);
  if (!user || !isCurrent()) return;
  const body = await api('GET', '/me/favorites', { query: { limit: 100 }, auth: 'required' });
  if (!isCurrent()) return;
  main.append(pageTitle('My list'));
  const items = body?.items || [];
  if (!items.length) {
    main.append(message('Your list is empty. Use “+ My list” on any title to keep it here.'),
      h('p', {}, h('a', { href: '/' }, 'Browse titles')));
    return;
  }
  main.append(grid(items.map((t) => card(t)), 'My list'));
}

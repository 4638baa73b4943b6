// Search results for ?q=.
import { api } from '../api.js';
import { card, grid, pageTitle, message, spinner } from '../ui.js';

export async function render({ main, query, isCurrent }) {
  const q = (query.get('q') || '').trim();
  main.append(pageTitle(q ? `Results for “${q}”` : 'Search'));
  if (!q) {
    main.append(message('Type in the search box above.'));
    return;
  }
  const loading = spinner('Searching');
  main.append(loading);
  const body = await api('GET', '/search', { query: { q } });
  if (!isCurrent()) return;
  loading.remove();
  const items = body?.items || [];
  if (!items.length) {
    main.append(message('No titles match. Try another spelling.'));
    return;
  }
  main.append(grid(items.map((t) => card(t)), 'Search results'));
}

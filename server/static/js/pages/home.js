// Home: continue watching and recommendations (signed in), new titles, then a row per genre.
import { api, isSignedIn } from '../api.js';
import { h } from '../dom.js';
import { reportsSettled } from '../history.js';
import { card, row, pageTitle, message, spinner, PLAYS } from '../ui.js';

const GENRE_ROWS = 4;
const ROW_LIMIT = 20;

// Admins browse every status; rows offer only what plays (a series is always `ready`; a
// `playable` title is still being encoded but plays).
const browsable = (t) => t && t.kind !== 'episode' && (!t.status || PLAYS.has(t.status));

async function safe(promise) {
  try {
    return await promise;
  } catch (err) {
    console.warn('home row unavailable', err);
    return null;
  }
}

export async function render({ main, isCurrent }) {
  const heading = pageTitle('Home');
  heading.classList.add('visually-hidden');
  const loading = spinner();
  main.append(heading, loading);

  const signedIn = isSignedIn();
  if (signedIn) await reportsSettled(); // a position saved on leaving the player shows below
  const [cont, recs, fresh] = await Promise.all([
    signedIn ? safe(api('GET', '/me/continue-watching')) : null,
    signedIn ? safe(api('GET', '/me/recommendations')) : null,
    safe(api('GET', '/titles', { query: { limit: ROW_LIMIT } })),
  ]);
  if (!isCurrent()) return;

  const sections = [];
  const contItems = (cont?.items || []).filter((it) => it && it.title);
  if (contItems.length) {
    sections.push(row('Continue watching', contItems.map((it) => {
      const d = it.duration_s || it.title.duration_s;
      return card(it.title, {
        progress: d ? it.position_s / d : null,
        href: `/watch/${encodeURIComponent(it.title.id)}`,
      });
    }), { id: 'continue' }));
  }
  const recItems = (recs?.items || []).filter(browsable);
  if (recItems.length) sections.push(row('Recommended for you', recItems.map((t) => card(t)), { id: 'recommended' }));

  const newItems = (fresh?.items || []).filter(browsable);
  if (newItems.length) sections.push(row('New on StreamFlix', newItems.map((t) => card(t)), { id: 'new' }));

  // Genres by how often they appear among the newest titles.
  const counts = new Map();
  for (const t of newItems) for (const g of t.genres || []) counts.set(g, (counts.get(g) || 0) + 1);
  const genres = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, GENRE_ROWS).map(([g]) => g);
  const byGenre = await Promise.all(genres.map((g) => safe(api('GET', '/titles', { query: { genre: g, limit: ROW_LIMIT } }))));
  if (!isCurrent()) return;
  genres.forEach((g, i) => {
    const items = (byGenre[i]?.items || []).filter(browsable);
    if (items.length) sections.push(row(g, items.map((t) => card(t)), { id: `genre-${g.toLowerCase().replace(/[^a-z0-9]+/g, '-')}` }));
  });

  loading.remove();
  if (!sections.length) {
    main.append(message(fresh ? 'Nothing to watch yet: an administrator can add titles with `streamflix ingest`.' : 'The catalog is unavailable right now.'));
  }
  if (!signedIn) {
    main.append(h('p', { class: 'hint' }, h('a', { href: '/login' }, 'Sign in'), ' to resume where you stopped and keep a list.'));
  }
  main.append(...sections);
}

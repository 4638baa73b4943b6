// Title details: description, play/resume, favourite, and for a series its seasons and episodes.
import { api, isSignedIn } from '../api.js';
import { h, formatDuration } from '../dom.js';
import { favoriteButton, isFavorite } from '../favorite.js';
import { resumePosition } from '../history.js';
import { seasonsOf } from '../series.js';
import { poster, metaLine, pageTitle, message, plays, encodingNote, PLAYS } from '../ui.js';

export async function render({ main, params, navigate, isCurrent }) {
  const title = await api('GET', `/titles/${encodeURIComponent(params.id)}`);
  if (!isCurrent()) return;
  const [fav, resume] = await Promise.all([
    isFavorite(title.id).catch(() => false),
    plays(title) ? resumePosition(title.id).catch(() => 0) : 0,
  ]);
  if (!isCurrent()) return;

  const actions = h('div', { class: 'actions' });
  if (title.kind !== 'series') {
    if (plays(title)) {
      actions.append(h('a', { class: 'button button-primary', href: `/watch/${encodeURIComponent(title.id)}`, id: 'play' },
        resume > 5 ? `▶ Resume from ${formatDuration(resume)}` : '▶ Play'));
      if (title.status === 'playable') actions.append(encodingNote({ id: 'encoding-note' }));
    } else {
      actions.append(h('span', { class: ['badge', `status-${title.status}`] },
        title.status === 'failed' ? 'Unavailable' : 'Being prepared…'));
    }
  }
  actions.append(favoriteButton(title, fav, { navigate }));

  const info = h('div', { class: 'details-info' },
    pageTitle(title.title),
    h('p', { class: 'details-meta' }, metaLine(title)),
    title.kind === 'episode' && title.series_id
      ? h('p', {}, 'Episode of ', h('a', { href: `/title/${encodeURIComponent(title.series_id)}`, id: 'series-link' }, title.series_title || 'the series'))
      : null,
    title.description ? h('p', { class: 'details-description' }, title.description) : null,
    Array.isArray(title.genres) && title.genres.length
      ? h('ul', { class: 'tags', 'aria-label': 'Genres' }, title.genres.map((g) => h('li', {}, g)))
      : null,
    actions,
  );
  main.append(h('article', { class: 'details' }, poster(title, { large: true }), info));

  if (title.kind === 'series') main.append(seasonsSection(title));
  if (!isSignedIn() && title.kind !== 'series') {
    main.append(h('p', { class: 'hint' }, h('a', { href: `/login?next=${encodeURIComponent(location.pathname)}` }, 'Sign in'), ' to watch.'));
  }
}

function seasonsSection(series) {
  const seasons = seasonsOf(series);
  const section = h('section', { class: 'seasons', 'aria-labelledby': 'seasons-heading' }, h('h2', { id: 'seasons-heading' }, 'Episodes'));
  if (!seasons.length) {
    section.append(message('No episodes yet.'));
    return section;
  }
  const list = h('ol', { class: 'episodes' });
  const showSeason = (s) => {
    list.replaceChildren(...s.episodes.map((ep) => h('li', { class: 'episode' },
      h('a', { href: PLAYS.has(ep.status) || !ep.status ? `/watch/${encodeURIComponent(ep.id)}` : `/title/${encodeURIComponent(ep.id)}`, class: 'episode-link' },
        h('span', { class: 'episode-number' }, String(ep.episode_number ?? '')),
        h('span', { class: 'episode-body' },
          h('span', { class: 'episode-title' }, ep.title || `Episode ${ep.episode_number}`),
          h('span', { class: 'card-meta' }, [ep.duration_s ? formatDuration(ep.duration_s) : '', ep.status && ep.status !== 'ready' && ep.status !== 'playable' ? ep.status : ''].filter(Boolean).join(' · ')),
          ep.status === 'playable' ? encodingNote() : null,
          ep.description ? h('span', { class: 'episode-description' }, ep.description) : null)))));
  };
  if (seasons.length > 1) {
    const tabs = h('div', { class: 'season-tabs', role: 'group', 'aria-label': 'Season' });
    seasons.forEach((s, i) => {
      const b = h('button', { type: 'button', class: 'chip', 'aria-pressed': String(i === 0) }, `Season ${s.number}`);
      b.addEventListener('click', () => {
        for (const other of tabs.children) other.setAttribute('aria-pressed', 'false');
        b.setAttribute('aria-pressed', 'true');
        showSeason(s);
      });
      tabs.append(b);
    });
    section.append(tabs);
  } else {
    section.append(h('h3', {}, `Season ${seasons[0].number}`));
  }
  showSeason(seasons[0]);
  section.append(list);
  return section;
}

// A series' seasons and episodes, whatever shape the title answer nests them in:
// `seasons: [{season_number|number, episodes: [...]}]` or a flat `episodes: [...]`.

export function seasonsOf(series) {
  const bySeason = new Map();
  const add = (num, ep) => {
    const n = Number.isFinite(Number(num)) ? Number(num) : 1;
    if (!bySeason.has(n)) bySeason.set(n, []);
    bySeason.get(n).push(ep);
  };
  if (Array.isArray(series.seasons)) {
    for (const s of series.seasons) {
      const num = s.season_number ?? s.number ?? s.season;
      for (const ep of s.episodes || []) add(ep.season_number ?? num, ep);
    }
  }
  if (Array.isArray(series.episodes)) {
    for (const ep of series.episodes) add(ep.season_number, ep);
  }
  const seasons = [...bySeason.entries()].sort((a, b) => a[0] - b[0]).map(([number, eps]) => ({
    number,
    episodes: dedupe(eps).sort((a, b) => (a.episode_number ?? 0) - (b.episode_number ?? 0)),
  }));
  return seasons;
}

function dedupe(eps) {
  const seen = new Set();
  return eps.filter((e) => (seen.has(e.id) ? false : seen.add(e.id)));
}

/** The episode after `episode` in watching order, or null. */
export function nextEpisode(series, episode) {
  const all = seasonsOf(series).flatMap((s) => s.episodes);
  const i = all.findIndex((e) => e.id === episode.id);
  return i >= 0 && i + 1 < all.length ? all[i + 1] : null;
}

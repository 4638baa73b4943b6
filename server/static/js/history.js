// Watch history: where the viewer stopped in a title, and the reports that save it.
import { api, isSignedIn } from './api.js';

const pending = new Set();

/** Seconds to resume from, or 0. */
export async function resumePosition(titleId) {
  if (!isSignedIn()) return 0;
  await reportsSettled();
  // The API's largest page: the default (50) would miss a title watched 51 titles ago.
  const body = await api('GET', '/me/history', { query: { limit: 100 }, auth: 'required' });
  const item = (body?.items || []).find((it) => (it.title?.id ?? it.title_id) === titleId);
  return item && Number.isFinite(Number(item.position_s)) ? Number(item.position_s) : 0;
}

/** PUT the position. keepalive: the request outlives an in-app navigation or a closing tab. */
export function reportPosition(titleId, body) {
  const p = api('PUT', `/me/history/${encodeURIComponent(titleId)}`, { body, auth: 'required', keepalive: true })
    .catch((err) => console.warn('history report failed', err))
    .finally(() => pending.delete(p));
  pending.add(p);
  return p;
}

/** Pages that show history (continue watching) wait for reports still in flight, so
 * leaving the player for the home page shows where you just stopped. */
export function reportsSettled() {
  return Promise.allSettled([...pending]);
}

// Watch history: where the viewer stopped in a title.
import { api, isSignedIn } from './api.js';

/** Seconds to resume from, or 0. */
export async function resumePosition(titleId) {
  if (!isSignedIn()) return 0;
  const body = await api('GET', '/me/history', { auth: 'required' });
  const item = (body?.items || []).find((it) => (it.title?.id ?? it.title_id) === titleId);
  return item && Number.isFinite(Number(item.position_s)) ? Number(item.position_s) : 0;
}

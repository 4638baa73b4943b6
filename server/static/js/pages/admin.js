// Admin: upload sources (tus, resumable), every title with its status, the latest transcode
// job's progress and the failure reason (refreshing itself while something is still being
// transcoded), retry or delete a failed title; API keys and webhooks.
import { api } from '../api.js';
import { uploadPanel } from '../admin-upload.js';
import { keysSection, hooksSection } from '../admin-access.js';
import { h, formatDate } from '../dom.js';
import { requireSignIn } from '../session.js';
import { pageTitle, message } from '../ui.js';

const POLL_MS = 3000;

/** Every title an admin can see (all statuses), plus episodes that have jobs (browse lists
 * episodes under their series, not on their own). */
async function allTitles(jobs) {
  const out = new Map();
  try {
    const page = await api('GET', '/titles', { query: { limit: 100 }, auth: 'required' });
    for (const t of page?.items || []) out.set(t.id, t);
  } catch (err) {
    console.warn('admin: titles', err);
  }
  const missing = [...new Set(jobs.map((j) => j.title_id))].filter((id) => !out.has(id)).slice(0, 50);
  await Promise.all(missing.map(async (id) => {
    try {
      out.set(id, await api('GET', `/titles/${encodeURIComponent(id)}`, { auth: 'required' }));
    } catch {
      /* deleted since the job ran */
    }
  }));
  return out;
}

function progressCell(job, status) {
  const pct = status === 'ready' ? 100 : Math.round(Number(job?.progress) || 0);
  const bar = h('progress', { max: '100', value: String(pct), 'aria-label': 'Transcode progress' });
  return h('td', { class: 'progress-cell', dataset: { label: 'Progress' } }, bar, h('span', {}, `${pct}%`));
}

export async function render({ main, navigate, isCurrent }) {
  const user = await requireSignIn(navigate);
  if (!user || !isCurrent()) return;
  main.append(pageTitle('Titles and transcodes'));
  if (user.role !== 'admin') {
    main.append(message('This page is for administrators.', 'error'));
    return;
  }
  const summary = h('p', { class: 'hint', id: 'queue-summary', role: 'status' });
  const body = h('tbody');
  const table = h('table', { class: 'table table-cards', id: 'admin-titles' },
    h('thead', {}, h('tr', {}, ['Title', 'Kind', 'Status', 'Progress', 'Attempts', 'Failure reason', 'Updated', ''].map((c) => h('th', { scope: 'col' }, c)))),
    body);
  main.append(uploadPanel(() => refresh()), h('h2', {}, 'Titles'), summary, h('div', { class: 'table-wrap' }, table),
    keysSection(), hooksSection());

  let timer = null;
  let stopped = false;
  async function act(method, path) {
    try {
      await api(method, path, { auth: 'required' });
    } catch (err) {
      summary.textContent = err.message;
    }
    await refresh();
  }
  async function refresh() {
    let jobs;
    try {
      jobs = await api('GET', '/admin/jobs', { query: { limit: 200 }, auth: 'required' });
    } catch (err) {
      summary.textContent = `Could not load jobs: ${err.message}`;
      return;
    }
    const latest = new Map(); // newest first: keep the first job seen per title
    for (const job of jobs.items || []) if (!latest.has(job.title_id)) latest.set(job.title_id, job);
    const titles = await allTitles(jobs.items || []);
    if (stopped || !isCurrent()) return;
    const ids = [...new Set([...titles.keys(), ...latest.keys()])];
    const when = (id) => latest.get(id)?.updated_at || titles.get(id)?.created_at || '';
    ids.sort((a, b) => String(when(b)).localeCompare(String(when(a))));
    const rows = ids.map((id) => {
      const job = latest.get(id) || null;
      const t = titles.get(id) || { id, title: '(deleted title)', kind: '', status: job?.status };
      const status = t.status || job?.status || '';
      const reason = t.failure_reason || (job && job.error) || '';
      return h('tr', { dataset: { titleId: id, status } },
        h('th', { scope: 'row' }, titles.has(id) ? h('a', { href: `/title/${encodeURIComponent(id)}` }, t.title) : t.title),
        h('td', { dataset: { label: 'Kind' } }, t.kind || ''),
        h('td', { dataset: { label: 'Status' } }, h('span', { class: ['badge', `status-${status}`] }, status),
          job && ['queued', 'running', 'failed'].includes(job.status) && job.status !== status
            ? h('span', { class: 'card-meta' }, ` job ${job.status}`) : null),
        t.kind === 'series' ? h('td', { dataset: { label: 'Progress' } }, '—') : progressCell(job, status),
        h('td', { dataset: { label: 'Attempts' } }, job ? `${job.attempts ?? 0}/${job.max_attempts ?? '—'}` : '—'),
        h('td', { class: 'reason', dataset: { label: 'Failure' } }, reason || null),
        h('td', { dataset: { label: 'Updated' } }, formatDate(job?.updated_at || t.updated_at || t.created_at)),
        h('td', {}, status === 'failed' && titles.has(id) ? [
          h('button', { type: 'button', class: 'btn', on: { click: () => act('POST', `/admin/titles/${encodeURIComponent(id)}/retry`) } }, `Retry ${t.title}`),
          ' ',
          h('button', { type: 'button', class: 'btn btn-secondary', on: { click: () => {
            if (window.confirm(`Delete "${t.title}" and its files?`)) act('DELETE', `/titles/${encodeURIComponent(id)}`);
          } } }, `Delete ${t.title}`),
        ] : null));
    });
    body.replaceChildren(...rows);
    const active = (jobs.items || []).some((j) => ['queued', 'pending', 'running', 'processing'].includes(j.status));
    summary.textContent = `${rows.length} title${rows.length === 1 ? '' : 's'} · ${jobs.queue_depth ?? 0} job(s) waiting${active ? ' · refreshing' : ''}`;
    if (!rows.length) body.replaceChildren(h('tr', {}, h('td', { colspan: '8' }, 'No transcodes yet.')));
    clearTimeout(timer);
    if (active && !stopped) timer = setTimeout(refresh, POLL_MS);
  }
  await refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

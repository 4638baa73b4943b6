// The admin's API keys and webhooks: list, create (the key or the signing secret is shown
// once, in a field the admin can copy), revoke or remove; a webhook's recent deliveries with a
// resend button. Every value is a text node.
import { api } from './api.js';
import { h, formatDate } from './dom.js';

const SCOPES = ['read', 'catalog:write', 'upload'];
const EVENTS = ['title.created', 'title.playable', 'title.ready', 'title.failed', 'title.deleted', 'upload.completed'];

function checkboxes(name, values, checked) {
  return h('fieldset', { class: 'checks' }, h('legend', {}, name),
    values.map((v) => h('label', {}, h('input', { type: 'checkbox', name, value: v, checked: checked.includes(v) }), ` ${v}`)));
}

function picked(form, name) {
  return [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);
}

function secretBox(label, value) {
  return h('div', { class: 'secret', role: 'status' },
    h('label', {}, `${label} (shown once): `, h('input', { type: 'text', readonly: true, value, class: 'secret-value', size: '60' })));
}

export function keysSection() {
  const out = h('div', { class: 'secret-slot' });
  const body = h('tbody');
  const name = h('input', { type: 'text', name: 'name', required: true, maxlength: '100', 'aria-label': 'Key name', placeholder: 'Name, e.g. cms' });
  const form = h('form', { class: 'inline-form', id: 'key-form' }, name, checkboxes('scopes', SCOPES, ['read']), h('button', { class: 'btn', type: 'submit' }, 'Create key'));
  const error = h('p', { class: 'form-error', role: 'alert' });

  async function load() {
    const page = await api('GET', '/admin/api-keys', { auth: 'required' });
    body.replaceChildren(...(page.items || []).map((k) => h('tr', { dataset: { keyId: k.id } },
      h('th', { scope: 'row' }, k.name),
      h('td', { dataset: { label: 'Scopes' } }, k.scopes.join(', ')),
      h('td', { dataset: { label: 'Last used' } }, k.last_used_at ? formatDate(k.last_used_at) : 'never'),
      h('td', { dataset: { label: 'State' } }, k.revoked_at ? `revoked ${formatDate(k.revoked_at)}` : 'active'),
      h('td', {}, k.revoked_at ? null : h('button', { type: 'button', class: 'btn btn-secondary', on: { click: () => revoke(k) } }, `Revoke ${k.name}`)))));
  }
  async function revoke(k) {
    if (!window.confirm(`Revoke the key "${k.name}"? Anything using it stops at once.`)) return;
    await api('DELETE', `/admin/api-keys/${encodeURIComponent(k.id)}`, { auth: 'required' });
    await load();
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    try {
      const made = await api('POST', '/admin/api-keys', { auth: 'required', body: { name: name.value, scopes: picked(form, 'scopes') } });
      out.replaceChildren(secretBox(`Key "${made.name}"`, made.key));
      name.value = '';
      await load();
    } catch (err) {
      error.textContent = err.message;
    }
  });
  const section = h('section', { class: 'admin-section', 'aria-labelledby': 'keys-heading' },
    h('h2', { id: 'keys-heading' }, 'API keys'), form, error, out,
    h('div', { class: 'table-wrap' }, h('table', { class: 'table table-cards', id: 'api-keys' },
      h('thead', {}, h('tr', {}, ['Name', 'Scopes', 'Last used', 'State', ''].map((c) => h('th', { scope: 'col' }, c)))), body)));
  load().catch((err) => { error.textContent = err.message; });
  return section;
}

export function hooksSection() {
  const out = h('div', { class: 'secret-slot' });
  const list = h('div', { id: 'webhooks' });
  const url = h('input', { type: 'url', name: 'url', required: true, 'aria-label': 'Endpoint URL', placeholder: 'https://…' });
  const form = h('form', { class: 'inline-form', id: 'hook-form' }, url, checkboxes('events', EVENTS, ['title.ready', 'title.failed']), h('button', { class: 'btn', type: 'submit' }, 'Add webhook'));
  const error = h('p', { class: 'form-error', role: 'alert' });

  async function deliveries(hook, into) {
    const page = await api('GET', `/admin/webhooks/${encodeURIComponent(hook.id)}/deliveries`, { auth: 'required', query: { limit: 20 } });
    into.replaceChildren(...(page.items || []).map((d) => h('li', { dataset: { status: d.status } },
      `${d.event} · ${d.status} · ${d.attempts} attempt(s)${d.last_status ? ` · last answer ${d.last_status}` : ''}${d.last_error ? ` · ${d.last_error}` : ''} · ${formatDate(d.created_at)} `,
      h('button', { type: 'button', class: 'btn btn-secondary', on: { click: async () => {
        await api('POST', `/admin/webhooks/${encodeURIComponent(hook.id)}/deliveries/${d.id}/resend`, { auth: 'required' });
        await deliveries(hook, into);
      } } }, 'Resend'))));
    if (!into.children.length) into.append(h('li', {}, 'No deliveries yet.'));
  }
  async function load() {
    const page = await api('GET', '/admin/webhooks', { auth: 'required' });
    list.replaceChildren(...(page.items || []).map((hook) => {
      const log = h('ul', { class: 'deliveries' });
      return h('details', { class: 'webhook', dataset: { hookId: hook.id } },
        h('summary', { on: { click: () => deliveries(hook, log).catch(() => {}) } }, `${hook.url} — ${hook.events.join(', ')}`),
        log,
        h('button', { type: 'button', class: 'btn btn-secondary', on: { click: async () => {
          if (!window.confirm(`Remove the webhook to ${hook.url}?`)) return;
          await api('DELETE', `/admin/webhooks/${encodeURIComponent(hook.id)}`, { auth: 'required' });
          await load();
        } } }, 'Remove'));
    }));
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    try {
      const made = await api('POST', '/admin/webhooks', { auth: 'required', body: { url: url.value, events: picked(form, 'events') } });
      out.replaceChildren(secretBox(`Signing secret for ${made.url}`, made.secret));
      url.value = '';
      await load();
    } catch (err) {
      error.textContent = err.message;
    }
  });
  const section = h('section', { class: 'admin-section', 'aria-labelledby': 'hooks-heading' },
    h('h2', { id: 'hooks-heading' }, 'Webhooks'), form, error, out, list);
  load().catch((err) => { error.textContent = err.message; });
  return section;
}

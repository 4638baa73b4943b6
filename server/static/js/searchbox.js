// The header search box: suggestions as you type (debounced), an ARIA 1.2 combobox so arrow
// keys, Enter and Escape work, and stale answers never overwrite newer ones.
import { api } from './api.js';
import { h, debounce } from './dom.js';

const DEBOUNCE_MS = 200;

export function searchBox({ navigate }) {
  const listId = 'search-suggestions';
  const input = h('input', {
    type: 'search',
    name: 'q',
    id: 'search-input',
    placeholder: 'Search titles',
    autocomplete: 'off',
    spellcheck: 'false',
    role: 'combobox',
    'aria-autocomplete': 'list',
    'aria-expanded': 'false',
    'aria-controls': listId,
    'aria-label': 'Search titles',
  });
  const list = h('ul', { id: listId, role: 'listbox', class: 'suggestions', 'aria-label': 'Suggestions', hidden: true });
  const form = h('form', { class: 'search', role: 'search', action: '/search' },
    input,
    h('button', { type: 'submit', class: 'icon-button', 'aria-label': 'Search' }, '⌕'),
    list);

  let items = [];
  let active = -1;
  let seq = 0;
  let controller = null;

  function close() {
    list.hidden = true;
    list.replaceChildren();
    items = [];
    active = -1;
    input.setAttribute('aria-expanded', 'false');
    input.removeAttribute('aria-activedescendant');
  }

  function setActive(i) {
    active = i;
    [...list.children].forEach((li, j) => li.setAttribute('aria-selected', String(j === i)));
    if (i >= 0) input.setAttribute('aria-activedescendant', `suggestion-${i}`);
    else input.removeAttribute('aria-activedescendant');
  }

  function show(suggestions) {
    items = suggestions.slice(0, 8);
    active = -1;
    const fuzzy = items.length && items.every((it) => it.fuzzy);
    list.setAttribute('aria-label', fuzzy ? 'Did you mean' : 'Suggestions');
    list.replaceChildren(...items.map((item, i) => {
      const li = h('li', { id: `suggestion-${i}`, role: 'option', 'aria-selected': 'false', class: 'suggestion' },
        fuzzy && i === 0 ? h('span', { class: 'suggestion-hint' }, 'Did you mean ') : null, item.text);
      // mousedown, not click: it fires before the input's blur closes the list
      li.addEventListener('mousedown', (ev) => {
        ev.preventDefault();
        pick(item);
      });
      return li;
    }));
    list.hidden = items.length === 0;
    input.setAttribute('aria-expanded', String(items.length > 0));
  }

  /** A title's own page when the suggestion came from search, else the results for it. */
  function pick(item) {
    input.value = item.text;
    close();
    navigate(item.id ? `/title/${encodeURIComponent(item.id)}` : `/search?q=${encodeURIComponent(item.text)}`);
  }

  const suggest = debounce(async (q) => {
    const mine = ++seq;
    if (controller) controller.abort();
    controller = new AbortController();
    const { signal } = controller;
    try {
      const body = await api('GET', '/search/suggest', { query: { q }, signal });
      let found = (Array.isArray(body?.suggestions) ? body.suggestions : []).map((text) => ({ text: String(text) }));
      // Nothing starts with what was typed: likely a typo. Full search is typo-tolerant
      // (trigram similarity), so offer its best titles as "did you mean".
      if (!found.length && q.length >= 3) {
        const hits = await api('GET', '/search', { query: { q, limit: 5 }, signal });
        found = (hits?.items || []).map((t) => ({ text: String(t.title), id: t.id, fuzzy: true }));
      }
      if (mine !== seq || input.value.trim() !== q) return;
      show(found);
    } catch (err) {
      if (err.name !== 'AbortError' && mine === seq) close();
    }
  }, DEBOUNCE_MS);

  input.addEventListener('input', () => {
    const q = input.value.trim();
    if (q.length < 2) {
      suggest.cancel();
      seq++;
      close();
      return;
    }
    suggest(q);
  });

  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowDown' && items.length) {
      ev.preventDefault();
      setActive((active + 1) % items.length);
    } else if (ev.key === 'ArrowUp' && items.length) {
      ev.preventDefault();
      setActive(active <= 0 ? items.length - 1 : active - 1);
    } else if (ev.key === 'Escape') {
      close();
    } else if (ev.key === 'Enter' && active >= 0) {
      ev.preventDefault();
      pick(items[active]);
    }
  });

  input.addEventListener('blur', () => setTimeout(close, 100));

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = input.value.trim();
    suggest.cancel();
    seq++;
    close();
    if (q) navigate(`/search?q=${encodeURIComponent(q)}`);
  });

  return { element: form, input, setValue: (v) => { input.value = v; } };
}

// History routing: path patterns -> page modules. The server answers index.html for any
// non-API path, so a reload or a shared link lands on the same page.

const routes = [];
let current = null; // {cleanup}
let renderSeq = 0;

export function route(pattern, load) {
  const names = [];
  const re = new RegExp(
    '^' + pattern.replace(/\/:([a-z_]+)/g, (_, name) => {
      names.push(name);
      return '/([^/]+)';
    }) + '/?$',
  );
  routes.push({ re, names, load });
}

export function navigate(to, { replace = false } = {}) {
  const url = new URL(to, location.origin);
  if (url.origin !== location.origin) {
    location.assign(url);
    return;
  }
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

function match(pathname) {
  for (const r of routes) {
    const m = r.re.exec(pathname);
    if (m) {
      const params = {};
      r.names.forEach((n, i) => {
        params[n] = decodeURIComponent(m[i + 1]);
      });
      return { load: r.load, params };
    }
  }
  return null;
}

let notFound = null;
let onRender = () => {};

export function setNotFound(load) {
  notFound = load;
}

export function afterRender(fn) {
  onRender = fn;
}

export async function render() {
  const seq = ++renderSeq;
  if (current && current.cleanup) {
    try {
      current.cleanup();
    } catch (err) {
      console.warn('page cleanup failed', err);
    }
  }
  current = null;
  const main = document.getElementById('main');
  const found = match(location.pathname);
  const load = found ? found.load : notFound;
  const ctx = {
    params: found ? found.params : {},
    query: new URLSearchParams(location.search),
    main,
    navigate,
    isCurrent: () => seq === renderSeq,
  };
  main.replaceChildren();
  main.setAttribute('aria-busy', 'true');
  try {
    const page = await load();
    if (seq !== renderSeq) return;
    const cleanup = await page.render(ctx);
    if (seq !== renderSeq) {
      if (typeof cleanup === 'function') cleanup();
      return;
    }
    current = { cleanup: typeof cleanup === 'function' ? cleanup : null };
  } catch (err) {
    if (seq !== renderSeq) return;
    const { showError } = await import('./ui.js');
    showError(main, err);
  } finally {
    if (seq === renderSeq) main.removeAttribute('aria-busy');
  }
  if (seq === renderSeq) onRender(ctx);
}

/** Same-origin link clicks route on the client; modified clicks open as the browser would. */
export function interceptLinks(root = document) {
  root.addEventListener('click', (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const a = ev.target.closest('a[href]');
    if (!a || a.target || a.hasAttribute('download')) return;
    const url = new URL(a.href, location.origin);
    if (url.origin !== location.origin) return;
    if (url.pathname.startsWith('/api/') || url.pathname.startsWith('/stream/')) return;
    if (url.hash && url.pathname === location.pathname && url.search === location.search) return;
    ev.preventDefault();
    navigate(url.pathname + url.search);
  });
  window.addEventListener('popstate', () => render());
}

/** Called when the current page wants to run teardown before unload (pagehide). */
export function currentCleanup() {
  return current && current.cleanup;
}

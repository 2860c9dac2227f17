//! Client-side routes: the catalog at / (its state in the query string) and
//! every other page under /shop/…, so a reload or a shared link opens the same
//! page (the balancer answers those paths with index.html). Same-origin link
//! clicks are turned into history navigation.

const routes = [];
let cleanup = null;
let render = null;

/** Registers a page: `pattern` is a path with `:name` segments. */
export function route(pattern, view) {
  const names = [];
  const re = new RegExp('^' + pattern.replace(/:(\w+)/g, (_, n) => (names.push(n), '([^/]+)')) + '/?$');
  routes.push({ re, names, view });
}

/** Goes to `url` (a path with optional query); `replace` keeps history short. */
export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  return dispatch();
}

/** The current query as a plain object. */
export function query() {
  return Object.fromEntries(new URLSearchParams(location.search));
}

/** Renders the page for the current location; the previous page's cleanup (timers) runs first. */
export async function dispatch() {
  if (cleanup) {
    try {
      cleanup();
    } catch {
      /* a page's cleanup failing must not stop the next page */
    }
    cleanup = null;
  }
  const path = location.pathname;
  for (const r of routes) {
    const m = r.re.exec(path);
    if (!m) continue;
    const params = {};
    r.names.forEach((n, i) => (params[n] = decodeURIComponent(m[i + 1])));
    const result = await render(r.view, params);
    if (typeof result === 'function') cleanup = result;
    return;
  }
  await render(null, {});
}

/** Starts routing: `renderer(view, params)` draws a page (view null = not found). */
export function start(renderer) {
  render = renderer;
  addEventListener('popstate', dispatch);
  document.addEventListener('click', (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = e.target.closest('a[href]');
    if (!a || a.target || a.hasAttribute('download')) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin) return;
    if (url.pathname !== '/' && !url.pathname.startsWith('/shop/')) return;
    e.preventDefault();
    navigate(url.pathname + url.search);
  });
  return dispatch();
}

//! The catalog at /: a grid of products (image, name, price) with search,
//! category, sort and pagination, all kept in the URL (?q=&category=&sort=&page=)
//! so a reload or a shared link shows the same page.

import { call } from '../shop.js';
import { h, money, errorBox, loading } from '../dom.js';
import { navigate, query } from '../router.js';

export const PAGE_SIZE = 12;
const SORTS = [
  ['', 'Featured'],
  ['newest', 'Newest'],
  ['price_asc', 'Price: low to high'],
  ['price_desc', 'Price: high to low'],
  ['name_asc', 'Name: A–Z'],
  ['name_desc', 'Name: Z–A'],
];

/** The catalog URL for a state; empty values and page 1 are left out. */
function url(state) {
  const qs = new URLSearchParams();
  for (const k of ['q', 'category', 'sort']) if (state[k]) qs.set(k, state[k]);
  if (state.page > 1) qs.set('page', String(state.page));
  const s = qs.toString();
  return s ? `/?${s}` : '/';
}

export function image(p, cls = 'thumb') {
  const alt = p.name;
  if (!p.image_url) return h(`div.${cls}.noimage`, { role: 'img', 'aria-label': alt }, p.name.slice(0, 1).toUpperCase());
  return h(`img.${cls}`, { src: p.image_url, alt, loading: 'lazy', width: 320, height: 240 });
}

function card(p) {
  const out = p.stock === 0;
  return h('li.card', { 'data-product-id': p.id },
    h('a.card-link', { href: `/shop/products/${encodeURIComponent(p.id)}` },
      image(p),
      h('span.card-name', p.name)),
    h('p.card-price', money(p.price_cents, p.currency), out ? h('span.tag.out', 'Sold out') : null));
}

export default async function catalog(main) {
  const q = query();
  const state = {
    q: (q.q || '').trim(),
    category: q.category || '',
    sort: SORTS.some(([v]) => v === q.sort) ? q.sort : '',
    page: Math.max(1, Number.parseInt(q.page, 10) || 1),
  };
  document.title = state.q ? `“${state.q}” — Shop` : 'Shop';

  const results = h('section.results', { 'aria-live': 'polite', 'aria-label': 'Products' });
  const searchInput = h('input', { type: 'search', name: 'q', id: 'search-q', value: state.q, placeholder: 'Search products', autocomplete: 'off' });
  const sortSelect = h('select', { id: 'sort', name: 'sort', onchange: () => navigate(url({ ...state, sort: sortSelect.value, page: 1 })) },
    SORTS.map(([v, label]) => h('option', { value: v, selected: v === state.sort }, label)));
  const categories = h('nav.categories', { 'aria-label': 'Categories' });

  const form = h('form.search', { role: 'search', onsubmit: (e) => {
    e.preventDefault();
    navigate(url({ ...state, q: searchInput.value.trim(), page: 1 }));
  } },
  h('label.visually-hidden', { for: 'search-q' }, 'Search products'),
  searchInput,
  h('button', { type: 'submit' }, 'Search'));

  main.replaceChildren(
    h('div.catalog-head', h('h1', state.category ? cap(state.category) : 'All products'), form,
      h('div.sort', h('label', { for: 'sort' }, 'Sort by'), sortSelect)),
    h('div.catalog', categories, results),
  );

  loading(results, 'Loading products…');
  const [page, cats] = await Promise.allSettled([
    call('listProducts', { query: { q: state.q, category: state.category, sort: state.sort, limit: PAGE_SIZE, offset: (state.page - 1) * PAGE_SIZE } }),
    call('listCategories'),
  ]);

  if (cats.status === 'fulfilled') {
    const items = cats.value.items;
    categories.replaceChildren(h('h2', 'Categories'), h('ul',
      h('li', h('a', { href: url({ ...state, category: '', page: 1 }), 'aria-current': state.category ? null : 'page' }, 'All')),
      items.map((c) => h('li', h('a', { href: url({ ...state, category: c.name, page: 1 }), 'aria-current': c.name === state.category ? 'page' : null },
        cap(c.name), ' ', h('span.count', `(${c.count})`))))));
  } else {
    categories.remove();
  }

  if (page.status === 'rejected') {
    results.replaceChildren(errorBox(page.reason, h('button', { type: 'button', onclick: () => catalog(main) }, 'Try again')));
    return;
  }
  const { items, total } = page.value;
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  if (!items.length) {
    results.replaceChildren(h('p.empty', state.q ? `No products match “${state.q}”.` : 'No products here yet.'),
      (state.q || state.category || state.page > 1) && h('p', h('a', { href: '/' }, 'See all products')));
    return;
  }
  const from = (state.page - 1) * PAGE_SIZE + 1;
  results.replaceChildren(
    h('p.summary', `${from}–${from + items.length - 1} of ${total} products`),
    h('ul.grid', items.map(card)),
    pages > 1 && h('nav.pager', { 'aria-label': 'Pages' },
      state.page > 1 ? h('a', { href: url({ ...state, page: state.page - 1 }), rel: 'prev' }, '← Previous') : h('span'),
      h('span', { 'aria-current': 'page' }, `Page ${state.page} of ${pages}`),
      state.page < pages ? h('a', { href: url({ ...state, page: state.page + 1 }), rel: 'next' }, 'Next →') : h('span')),
  );
}

export function cap(s) {
  return s ? s.charAt(0).toUpperCase() + s.slice(1).replace(/-/g, ' ') : s;
}

//! The storefront's entry point: the header (navigation, cart count, who is
//! logged in), the page routes, and rendering a page into <main> with a
//! loading state and an error box instead of a blank page.

import { route, start, navigate } from './router.js';
import { apiBase, configure } from './api.js';
import { h, errorBox, loading } from './dom.js';
import { onChange, changed, authed, session } from './shop.js';
import catalog from './views/catalog.js';
import product from './views/product.js';
import { login, register } from './views/auth.js';
import cart from './views/cart.js';
import { orders, order } from './views/orders.js';
import account from './views/account.js';

// The API base is settled once; a dev-mode ?api= is remembered, then taken
// out of the address so it does not travel through links and ?next=.
configure({ apiBase: apiBase() });
const here = new URL(location.href);
if (here.searchParams.has('api')) {
  here.searchParams.delete('api');
  history.replaceState(null, '', here.pathname + here.search);
}

route('/', catalog);
route('/shop/products/:id', product);
route('/shop/login', login);
route('/shop/register', register);
route('/shop/cart', cart);
route('/shop/orders', orders);
route('/shop/orders/:id', order);
route('/shop/account', account);

const main = document.getElementById('main');
const nav = document.getElementById('nav');

function notFound(page) {
  document.title = 'Not found — Shop';
  page.replaceChildren(h('h1', 'Page not found'), h('p', 'There is nothing at this address. ', h('a', { href: '/' }, 'Back to the shop')));
}

/**
 * Each page draws into a fresh container: a page still finishing its
 * requests after the shopper moved on (or after a 401 sent them to log in)
 * writes into a detached element and cannot overwrite the new page.
 */
async function render(view, params) {
  const page = h('div.page');
  main.replaceChildren(page);
  loading(page);
  if (!view) return notFound(page);
  try {
    const result = await view(page, params);
    if (page.isConnected && !page.contains(document.activeElement)) main.focus({ preventScroll: true });
    return result;
  } catch (err) {
    if (err && err.name === 'AbortError') return undefined;
    page.replaceChildren(h('h1', 'Something went wrong'), errorBox(err), h('p', h('a', { href: '/' }, 'Back to the shop')));
    return undefined;
  }
}

let cartCount = null;
function drawNav(s) {
  const links = [h('li', h('a', { href: '/' }, 'Catalog'))];
  if (s) {
    links.push(
      h('li', h('a', { href: '/shop/cart', id: 'nav-cart' }, 'Cart', cartCount ? h('span.badge', { 'aria-label': `${cartCount} items` }, String(cartCount)) : null)),
      h('li', h('a', { href: '/shop/orders' }, 'Orders')),
      h('li', h('a', { href: '/shop/account' }, 'Account')),
      h('li', h('button.link', { type: 'button', id: 'logout', onclick: logout }, 'Log out')),
    );
  } else {
    links.push(h('li', h('a', { href: '/shop/login' }, 'Log in')), h('li', h('a', { href: '/shop/register' }, 'Register')));
  }
  nav.replaceChildren(h('ul', links));
}

async function refreshCount(s) {
  if (!s) {
    cartCount = null;
    return drawNav(s);
  }
  drawNav(s);
  try {
    const c = await authed('getCart');
    cartCount = c.items.reduce((n, i) => n + i.quantity, 0);
  } catch {
    cartCount = null;
  }
  if (session.current()) drawNav(session.current());
}

function logout() {
  session.clear();
  session.setNotice('You have been logged out.');
  changed();
  navigate('/shop/login');
}

onChange(refreshCount);
refreshCount(session.current());
start(render);

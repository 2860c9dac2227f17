//! A product page: image, description, price, availability, and adding a
//! quantity to the cart (logged-in shoppers; others are offered the login).

import { call, authed, changed, session } from '../shop.js';
import { h, money, field, busy, showFormError, clearFormError, notice } from '../dom.js';
import { image, cap } from './catalog.js';

function availability(stock) {
  if (stock === 0) return h('p.stock.out', 'Out of stock');
  if (stock <= 5) return h('p.stock.low', `Only ${stock} left`);
  return h('p.stock.in', 'In stock');
}

export default async function product(main, { id }) {
  let p;
  try {
    p = await call('getProduct', { params: { id } });
  } catch (err) {
    if (err.status !== 404) throw err;
    document.title = 'Not available — Shop';
    main.replaceChildren(h('h1', 'This product is no longer available'),
      h('p', 'It may have been removed from the catalog. ', h('a', { href: '/' }, 'Browse the catalog')));
    return;
  }
  document.title = `${p.name} — Shop`;

  const form = h('form.add', { novalidate: true });
  const qty = field('Quantity', 'quantity', { type: 'number', min: 1, max: 999, value: '1', inputmode: 'numeric', required: true });
  const button = h('button.primary', { type: 'submit', id: 'add-to-cart', 'data-busy-label': 'Adding…', disabled: p.stock === 0 }, 'Add to cart');
  const done = h('div.added', { 'aria-live': 'polite' });
  form.append(qty, button, done);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    done.replaceChildren();
    if (!session.current()) {
      const next = encodeURIComponent(location.pathname);
      done.replaceChildren(notice(h('span', 'Please ', h('a', { href: `/shop/login?next=${next}` }, 'log in'), ' to add to your cart.')));
      return;
    }
    const quantity = Number(form.quantity.value);
    if (!Number.isInteger(quantity) || quantity < 1 || quantity > 999) {
      showFormError(form, { problem: { title: 'Check the quantity', detail: '', errors: [] }, fieldErrors: { quantity: 'Enter a whole number from 1 to 999.' } });
      return;
    }
    busy(button, async () => {
      clearFormError(form);
      try {
        await authed('addToCart', { body: { product_id: p.id, quantity } });
        done.replaceChildren(notice(h('span', `Added ${quantity} × ${p.name} to your cart. `, h('a', { href: '/shop/cart' }, 'View cart')), 'success'));
        changed();
      } catch (err) {
        if (err.status !== 401) showFormError(form, err);
      }
    });
  });

  main.replaceChildren(
    h('nav.crumbs', { 'aria-label': 'Breadcrumb' }, h('a', { href: '/' }, 'Catalog'),
      p.category ? [' / ', h('a', { href: `/?category=${encodeURIComponent(p.category)}` }, cap(p.category))] : null),
    h('article.product',
      image(p, 'hero'),
      h('div.details',
        h('h1', p.name),
        h('p.price', money(p.price_cents, p.currency)),
        availability(p.stock),
        h('p.description', p.description),
        form)),
  );
}

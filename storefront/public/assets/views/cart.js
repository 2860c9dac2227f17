//! The cart: change quantities, remove lines, totals from the server, lines
//! whose product is gone marked, and checkout. Checkout sends one
//! Idempotency-Key per attempt: kept (also across a reload) until the shop
//! gives a definite answer, so a retry after a network error or a double
//! click can never make a second order.

import { authed, changed, requireLogin } from '../shop.js';
import { h, money, errorBox, busy, notice } from '../dom.js';
import { navigate } from '../router.js';

const KEY = 'shop.checkout-key';

function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** This shopper's unfinished checkout attempt's key, or a new one. */
function attemptKey(uid) {
  try {
    const k = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    if (k && k.uid === uid && typeof k.key === 'string') return k.key;
  } catch {
    /* a damaged entry is replaced below */
  }
  const key = newKey();
  sessionStorage.setItem(KEY, JSON.stringify({ uid, key }));
  return key;
}

function endAttempt() {
  sessionStorage.removeItem(KEY);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Checks out under the attempt's key. A 409 request_in_progress (the same
 * attempt still running) is waited out with the same key; 5xx and network
 * errors keep the key for the shopper's retry; any other answer ends the attempt.
 */
async function checkout(uid) {
  const key = attemptKey(uid);
  for (let i = 0; ; i++) {
    try {
      const order = await authed('checkout', { headers: { 'Idempotency-Key': key } });
      endAttempt();
      return order;
    } catch (err) {
      if (err.code === 'request_in_progress' && i < 20) {
        await sleep(500);
        continue;
      }
      if (!(err.network || err.status >= 500 || err.status === 429)) endAttempt();
      throw err;
    }
  }
}

function line(item, reload, setError) {
  const qty = h('input.qty', { type: 'number', min: 1, max: 999, value: String(item.quantity), inputmode: 'numeric',
    id: `qty-${item.id}`, name: 'quantity', disabled: !item.available });
  const err = h('p.field-error', { id: `qty-${item.id}-err`, 'aria-live': 'polite' });
  qty.setAttribute('aria-describedby', err.id);
  const update = h('button', { type: 'button', 'data-busy-label': 'Updating…', disabled: !item.available }, 'Update');
  update.addEventListener('click', () => busy(update, async () => {
    err.textContent = '';
    const quantity = Number(qty.value);
    if (!Number.isInteger(quantity) || quantity < 0 || quantity > 999) {
      err.textContent = 'Enter a whole number from 1 to 999.';
      return;
    }
    try {
      if (quantity === 0) await authed('removeCartItem', { params: { id: item.id } });
      else await authed('updateCartItem', { params: { id: item.id }, body: { quantity } });
      await reload();
    } catch (e) {
      if (e.status === 401) return;
      err.textContent = e.fieldErrors.quantity || e.problem.detail || e.problem.title;
      setError(e);
    }
  }));
  qty.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      update.click();
    }
  });
  const remove = h('button.danger', { type: 'button', 'data-busy-label': 'Removing…', 'aria-label': `Remove ${item.name}` }, 'Remove');
  remove.addEventListener('click', () => busy(remove, async () => {
    try {
      await authed('removeCartItem', { params: { id: item.id } });
      await reload();
    } catch (e) {
      if (e.status !== 401) setError(e);
    }
  }));
  return h('li.line', { 'data-item-id': item.id, class: item.available ? '' : 'gone' },
    h('div.line-name',
      h('a', { href: `/shop/products/${encodeURIComponent(item.product_id)}` }, item.name),
      !item.available && h('p.line-problem', { role: 'note' }, 'This product is no longer available. Remove it to check out.'),
      item.available && typeof item.stock === 'number' && item.stock < item.quantity &&
        h('p.line-problem', `Only ${item.stock} in stock.`)),
    h('div.line-price', money(item.unit_price_cents, item.currency), ' each'),
    h('div.line-qty', h('label', { for: qty.id }, 'Quantity'), qty, update, err),
    h('div.line-total', item.available ? money(item.line_total_cents, item.currency) : '—'),
    h('div.line-remove', remove));
}

export default async function cart(main) {
  document.title = 'Cart — Shop';
  const s = requireLogin();
  if (!s) return;
  const problems = h('div.cart-problems', { 'aria-live': 'assertive' });
  const body = h('div');
  const setError = (e) => problems.replaceChildren(errorBox(e));

  async function reload() {
    const c = await authed('getCart');
    changed();
    if (!c.items.length) {
      body.replaceChildren(h('p.empty', 'Your cart is empty. ', h('a', { href: '/' }, 'Browse the catalog')));
      return;
    }
    const blocked = c.items.some((i) => !i.available);
    const totals = c.totals && c.totals.length ? c.totals : [{ currency: c.currency, total_cents: c.total_cents }];
    const checkoutButton = h('button.primary.big', { type: 'button', id: 'checkout', 'data-busy-label': 'Placing order…', disabled: blocked }, 'Check out');
    checkoutButton.addEventListener('click', () => busy(checkoutButton, async () => {
      problems.replaceChildren();
      try {
        const order = await checkout(s.user_id);
        changed();
        await navigate(`/shop/orders/${encodeURIComponent(order.id)}`);
      } catch (e) {
        if (e.status === 401) return;
        const retry = e.network || e.status >= 500;
        problems.replaceChildren(errorBox(e, retry ? h('p', 'Nothing was charged twice: press “Check out” again to retry the same order.') : null));
        if (!retry) await reload().catch(() => {});
      }
    }));
    body.replaceChildren(
      h('ul.lines', c.items.map((i) => line(i, reload, setError))),
      h('div.summary-box',
        totals.map((t) => h('p.total', 'Total ', h('strong', { 'data-total': t.currency }, money(t.total_cents, t.currency)))),
        blocked && notice('Remove the unavailable products to check out.', 'warning'),
        checkoutButton));
  }

  main.replaceChildren(h('h1', 'Your cart'), problems, body);
  await reload();
}

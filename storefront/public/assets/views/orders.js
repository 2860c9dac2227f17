//! Order history and an order page. A pending order shows the payment form
//! (card number, expiry, CVC) with each decline explained as a shopper
//! expects; the page polls the order so its status moves from
//! pending_payment to paid without a reload.

import { authed, call, requireLogin } from '../shop.js';
import { h, money, date, field, busy, showFormError, clearFormError, notice, errorBox } from '../dom.js';
import { query } from '../router.js';

const PAGE_SIZE = 20;
const POLL_MS = 2000;

const STATUS = { pending_payment: 'Awaiting payment', paid: 'Paid' };

function statusBadge(status) {
  return h(`span.status.${status}`, { 'data-status': status }, STATUS[status] || status);
}

export async function orders(main) {
  document.title = 'Orders — Shop';
  if (!requireLogin()) return;
  const page = Math.max(1, Number.parseInt(query().page, 10) || 1);
  const list = await authed('listOrders', { query: { limit: PAGE_SIZE, offset: (page - 1) * PAGE_SIZE } });
  const pages = Math.max(1, Math.ceil(list.total / PAGE_SIZE));
  main.replaceChildren(h('h1', 'Your orders'),
    list.items.length === 0
      ? h('p.empty', 'No orders yet. ', h('a', { href: '/' }, 'Start shopping'))
      : h('ul.orders', list.items.map((o) => h('li.order-row', { 'data-order-id': o.id },
        h('a', { href: `/shop/orders/${encodeURIComponent(o.id)}` }, `Order of ${date(o.created_at)}`),
        h('span', `${o.items.length} ${o.items.length === 1 ? 'product' : 'products'}`),
        h('strong', money(o.amount_cents, o.currency)),
        statusBadge(o.status)))),
    pages > 1 && h('nav.pager', { 'aria-label': 'Pages' },
      page > 1 ? h('a', { href: `/shop/orders?page=${page - 1}`, rel: 'prev' }, '← Newer') : h('span'),
      h('span', `Page ${page} of ${pages}`),
      page < pages ? h('a', { href: `/shop/orders?page=${page + 1}`, rel: 'next' }, 'Older →') : h('span')));
}

/** What a shopper is told for each of the provider's decline codes. */
const DECLINES = {
  card_declined: 'Your card was declined. Please use another card.',
  insufficient_funds: 'Your card has insufficient funds. Please use another card.',
  expired_card: 'Your card has expired. Check the expiry date or use another card.',
  processing_error: 'There was a problem processing your card. Nothing was charged — please try again.',
};

/** "12/30", "12 / 2030", "1/31" → {exp_month, exp_year} or null. */
export function parseExpiry(s) {
  const m = /^\s*(\d{1,2})\s*\/\s*(\d{2}|\d{4})\s*$/.exec(s);
  return m ? { exp_month: Number(m[1]), exp_year: Number(m[2]) } : null;
}

function payForm(o, onPaid) {
  const form = h('form.pay', { novalidate: true, 'aria-labelledby': 'pay-title' },
    h('h2', { id: 'pay-title' }, 'Pay for your order'),
    field('Card number', 'card_number', { type: 'text', inputmode: 'numeric', autocomplete: 'cc-number', required: true, placeholder: '4242 4242 4242 4242', maxlength: 23 }),
    h('div.row',
      field('Expiry (MM/YY)', 'expiry', { type: 'text', inputmode: 'numeric', autocomplete: 'cc-exp', required: true, placeholder: 'MM/YY', maxlength: 7 }),
      field('CVC', 'cvc', { type: 'text', inputmode: 'numeric', autocomplete: 'cc-csc', required: true, placeholder: '123', maxlength: 4 })),
    h('button.primary.big', { type: 'submit', id: 'pay', 'data-busy-label': 'Paying…' }, `Pay ${money(o.amount_cents, o.currency)}`),
    h('p.hint', 'Test cards: 4242 4242 4242 4242 pays; 4000 0000 0000 0002 is declined.'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const button = form.querySelector('button[type=submit]');
    busy(button, async () => {
      clearFormError(form);
      const expiry = parseExpiry(form.expiry.value);
      if (!expiry) {
        showFormError(form, { problem: { title: 'Check the card details', detail: '' }, fieldErrors: { expiry: 'Enter the expiry as MM/YY, e.g. 12/30.' } });
        return;
      }
      try {
        await call('payInvoice', { params: { id: o.invoice_id }, body: { card_number: form.card_number.value.trim(), cvc: form.cvc.value.trim(), ...expiry } });
        onPaid();
      } catch (err) {
        if (err.code === 'already_paid') return onPaid();
        if (err.status === 402 && DECLINES[err.code]) {
          const p = { ...err.problem, title: DECLINES[err.code], detail: '' };
          return showFormError(form, { problem: p, fieldErrors: err.code === 'expired_card' ? { expiry: 'This card has expired.' } : {} });
        }
        showFormError(form, err, { exp_month: 'expiry', exp_year: 'expiry' });
      }
    });
  });
  return form;
}

export async function order(main, { id }) {
  document.title = 'Order — Shop';
  if (!requireLogin()) return undefined;
  let o = await authed('getOrder', { params: { id } });
  let timer = null;
  let stopped = false;
  let justPaid = false;
  const statusLine = h('p.order-status', { 'aria-live': 'polite' });
  const payArea = h('div.pay-area');
  const pollError = h('div', { 'aria-live': 'polite' });

  function draw() {
    document.title = `Order ${STATUS[o.status] || o.status} — Shop`;
    statusLine.replaceChildren('Status: ', statusBadge(o.status), o.paid_at ? ` on ${date(o.paid_at)}` : '');
    if (o.status === 'paid') {
      payArea.replaceChildren(notice('Thank you! Your payment was received and your order is confirmed.', 'success'));
    } else if (justPaid) {
      payArea.replaceChildren(h('p.loading', { role: 'status' }, h('span.spinner', { 'aria-hidden': 'true' }), 'Payment accepted — confirming your order…'));
    } else if (o.invoice_id && !payArea.querySelector('form')) {
      payArea.replaceChildren(payForm(o, () => {
        justPaid = true;
        draw();
        poll(500);
      }));
    }
  }

  function poll(delay = POLL_MS) {
    clearTimeout(timer);
    if (stopped || !main.isConnected || o.status === 'paid') return;
    timer = setTimeout(async () => {
      try {
        o = await authed('getOrder', { params: { id } });
        pollError.replaceChildren();
        draw();
      } catch (err) {
        if (err.status === 401) return;
        pollError.replaceChildren(errorBox(err));
      }
      poll(justPaid ? 1000 : POLL_MS);
    }, delay);
  }

  main.replaceChildren(
    h('nav.crumbs', { 'aria-label': 'Breadcrumb' }, h('a', { href: '/shop/orders' }, 'Orders'), ' / this order'),
    h('h1', 'Order'),
    h('p.muted', `Placed ${date(o.created_at)} · `, h('code', o.id)),
    statusLine,
    h('table.items',
      h('thead', h('tr', h('th', { scope: 'col' }, 'Product'), h('th', { scope: 'col' }, 'Qty'), h('th', { scope: 'col' }, 'Price'), h('th', { scope: 'col' }, 'Total'))),
      h('tbody', o.items.map((i) => h('tr', h('td', i.name), h('td', String(i.quantity)), h('td', money(i.unit_price_cents, o.currency)), h('td', money(i.line_total_cents, o.currency))))),
      h('tfoot', h('tr', h('th', { scope: 'row', colspan: 3 }, 'Total'), h('td', h('strong', money(o.amount_cents, o.currency)))))),
    pollError,
    payArea);
  draw();
  poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

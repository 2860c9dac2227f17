//! Small DOM helpers: an element builder, money and date formatting, and the
//! pieces every page shares — an error box from a problem+json, per-field
//! messages beside form fields, and a busy state for buttons.

/**
 * h('p.note', {id: 'x', onclick}, 'text', child) → element. Attributes
 * starting with `on` become listeners; `class`/`.a.b` set classes; false,
 * null and undefined children are skipped. Text is always text, never HTML.
 */
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = [el.className, v].filter(Boolean).join(' ');
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** 1999, 'USD' → "$19.99"; an unknown currency still formats. */
export function money(cents, currency = 'USD') {
  const n = Number(cents) / 100;
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(n);
  } catch {
    return `${n.toFixed(2)} ${currency}`;
  }
}

export function date(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso || '') : d.toLocaleString();
}

/**
 * Headlines a shopper understands for the codes they meet; the API's own
 * title is used for any other code, and its detail is always shown.
 */
const HEADLINES = {
  cart_full: 'Your cart is full',
  cart_empty: 'Your cart is empty',
  cart_changed: 'Your cart changed — please check it and try again',
  product_not_found: 'This product is no longer available',
  product_unavailable: 'A product in your cart is no longer available',
  email_taken: 'That email address is already registered',
  invalid_credentials: 'Wrong email or password',
  validation_failed: 'Please correct the highlighted fields',
  rate_limited: 'Too many attempts — please wait a moment',
  payments_unavailable: 'Payments are unavailable right now — nothing was charged',
  products_unavailable: 'The catalog is unavailable right now',
};

/**
 * The error box for an ApiError (or any Error): title, detail, and a role to
 * be read out. A page that knows better what a code means where it stands
 * passes `err.headline` (the API's code stays on the box's data-code).
 */
export function errorBox(err, extra) {
  const p = (err && err.problem) || { title: 'Something went wrong', detail: err && err.message ? err.message : '' };
  const title = (err && err.headline) || HEADLINES[p.code] || p.title || 'Something went wrong';
  const detail = p.detail && p.detail !== title ? p.detail : '';
  return h('div.alert.error', { role: 'alert', 'data-code': p.code || '' },
    h('strong', title), detail && h('p', detail), extra);
}

export function notice(text, kind = 'info') {
  return h(`div.alert.${kind}`, { role: kind === 'error' ? 'alert' : 'status' }, text);
}

/** Empties a container and puts a loading message in it. */
export function loading(el, text = 'Loading…') {
  el.replaceChildren(h('p.loading', { role: 'status', 'aria-live': 'polite' }, h('span.spinner', { 'aria-hidden': 'true' }), text));
}

/**
 * A labelled form field. `name` is also the API's field name, so
 * showFieldErrors can put a problem's errors[] beside the right input.
 */
export function field(label, name, attrs = {}, hint) {
  const id = `f-${name}-${Math.random().toString(36).slice(2, 7)}`;
  const input = h('input', { id, name, ...attrs, 'aria-describedby': `${id}-err${hint ? ` ${id}-hint` : ''}` });
  return h('div.field', { 'data-field': name },
    h('label', { for: id }, label),
    input,
    hint && h('small.hint', { id: `${id}-hint` }, hint),
    h('p.field-error', { id: `${id}-err`, 'aria-live': 'polite' }));
}

/** Clears old messages in a form and shows the ones in `errors` ({field: message}); returns the unmatched ones. */
export function showFieldErrors(form, errors = {}) {
  for (const f of form.querySelectorAll('.field')) {
    f.classList.remove('invalid');
    const input = f.querySelector('input,select,textarea');
    if (input) input.removeAttribute('aria-invalid');
    f.querySelector('.field-error').textContent = '';
  }
  const rest = {};
  let first = null;
  for (const [name, message] of Object.entries(errors)) {
    const f = form.querySelector(`.field[data-field="${CSS.escape(name)}"]`);
    if (!f) {
      rest[name] = message;
      continue;
    }
    f.classList.add('invalid');
    const input = f.querySelector('input,select,textarea');
    if (input) input.setAttribute('aria-invalid', 'true');
    f.querySelector('.field-error').textContent = message;
    first = first || input;
  }
  if (first) first.focus();
  return rest;
}

/**
 * Runs `fn` with the button disabled and marked busy, so a double click
 * cannot send twice; re-enables it afterwards unless the page moved on.
 */
export async function busy(button, fn) {
  if (button.disabled) return undefined;
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  if (button.dataset.busyLabel) button.textContent = button.dataset.busyLabel;
  try {
    return await fn();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = label;
  }
}

/** A form's problem area: the first child with class form-problem, created if missing. */
export function problemArea(form) {
  let el = form.querySelector('.form-problem');
  if (!el) {
    el = h('div.form-problem');
    form.prepend(el);
  }
  return el;
}

/**
 * Shows an API error on a form: per-field errors beside their fields, and
 * the title/detail (plus any field errors that match no field) above it.
 */
export function showFormError(form, err, fieldAliases = {}) {
  const area = problemArea(form);
  const byField = {};
  for (const [k, v] of Object.entries((err && err.fieldErrors) || {})) byField[fieldAliases[k] || k] = v;
  const rest = showFieldErrors(form, byField);
  const restList = Object.entries(rest).map(([k, v]) => h('li', `${k}: ${v}`));
  area.replaceChildren(errorBox(err, restList.length ? h('ul', restList) : null));
}

export function clearFormError(form) {
  showFieldErrors(form, {});
  problemArea(form).replaceChildren();
}

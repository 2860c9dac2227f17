//! What every page shares: calls made as the logged-in shopper, the rule
//! that a 401 sends the shopper back to the login page with a message (the
//! cart is server-side, so nothing is lost), and the header's cart count.

import { call, configure } from './api.js';
import * as session from './session.js';
import { navigate } from './router.js';

const listeners = new Set();

/** Called with the session (or null) whenever login state or the cart changes. */
export function onChange(fn) {
  listeners.add(fn);
}

export function changed() {
  for (const fn of listeners) fn(session.current());
}

/** Where a shopper who must log in goes, coming back to `next` afterwards. */
export function toLogin(message, kind = 'info') {
  if (message) session.setNotice(message, kind);
  const here = location.pathname + location.search;
  if (location.pathname === '/shop/login') return navigate(here, { replace: true });
  const next = location.pathname === '/shop/register' ? '' : `?next=${encodeURIComponent(here)}`;
  return navigate(`/shop/login${next}`, { replace: true });
}

configure({
  unauthorized(err, token) {
    // Many requests may carry the same dead token: only the first 401 for
    // the stored token logs out; a late one for an older token is ignored.
    const s = session.current();
    if (!s || s.token !== token) return;
    session.clear();
    changed();
    toLogin('Your session has expired or was signed out. Please log in again — your cart is saved.', 'warning');
  },
  busy(on) {
    document.documentElement.classList.toggle('busy', on);
  },
});

/** The session, or null after sending the shopper to login (expired tokens too). */
export function requireLogin() {
  const s = session.current();
  if (!s) {
    toLogin('Please log in to continue.');
    return null;
  }
  if (session.expired(s)) {
    session.clear();
    changed();
    toLogin('Your session has expired. Please log in again — your cart is saved.', 'warning');
    return null;
  }
  return s;
}

/** Calls an operation as the shopper: the token and `uid` filled in. */
export function authed(name, opts = {}) {
  const s = session.current();
  if (!s) return Promise.reject(Object.assign(new Error('not logged in'), { problem: { title: 'Please log in', detail: '' } }));
  return call(name, { ...opts, token: s.token, params: { uid: s.user_id, ...(opts.params || {}) } });
}

export { call, session };

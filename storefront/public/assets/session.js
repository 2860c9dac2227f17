//! The logged-in shopper: the token from POST /user/login kept in
//! localStorage so a reload stays logged in, and a one-shot notice (why the
//! shopper was sent to the login page) that survives the navigation.

const KEY = 'shop.session';
const NOTICE = 'shop.notice';

/** `{token, user_id, expires_at}` or null; an expired token counts as none. */
export function current() {
  let s;
  try {
    s = JSON.parse(localStorage.getItem(KEY) || 'null');
  } catch {
    s = null;
  }
  if (!s || typeof s.token !== 'string' || typeof s.user_id !== 'string') return null;
  return s;
}

/** True when the stored token's expires_at has passed. */
export function expired(s = current()) {
  if (!s || !s.expires_at) return false;
  const t = Date.parse(s.expires_at);
  return Number.isFinite(t) && t <= Date.now();
}

export function save(session) {
  localStorage.setItem(KEY, JSON.stringify({ token: session.token, user_id: session.user_id, expires_at: session.expires_at }));
}

export function clear() {
  localStorage.removeItem(KEY);
}

/** A message for the next page shown (the login page reads it once). */
export function setNotice(text, kind = 'info') {
  sessionStorage.setItem(NOTICE, JSON.stringify({ text, kind }));
}

export function takeNotice() {
  const raw = sessionStorage.getItem(NOTICE);
  sessionStorage.removeItem(NOTICE);
  try {
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

//! The shop's HTTP API as the storefront uses it: where it lives (the API
//! base), the table of operations it calls (checked against openapi.json by
//! storefront/tests/contract.test.js, so a contract change breaks a test and
//! not the page), and one fetch wrapper that turns every failure into an
//! ApiError carrying the problem+json body.

/**
 * Every operation the UI calls: method, path template, and the response
 * fields the UI reads (`a.b` for nested objects, `items[].x` for arrays).
 * The contract test resolves each against the 2xx response schema.
 */
export const operations = {
  register: { method: 'POST', path: '/user/', reads: ['id', 'email', 'name'] },
  login: { method: 'POST', path: '/user/login', reads: ['token', 'user_id', 'expires_at'] },
  getUser: { method: 'GET', path: '/user/{id}', reads: ['id', 'email', 'name', 'role', 'created_at'] },
  updateUser: { method: 'PUT', path: '/user/{id}', reads: ['id', 'email', 'name'] },
  deleteUser: { method: 'DELETE', path: '/user/{id}', reads: [] },
  listProducts: {
    method: 'GET',
    path: '/products/',
    reads: [
      'items[].id', 'items[].name', 'items[].price_cents', 'items[].currency',
      'items[].image_url', 'items[].category', 'items[].stock', 'total', 'limit', 'offset',
    ],
  },
  listCategories: { method: 'GET', path: '/products/categories', reads: ['items[].name', 'items[].count'] },
  getProduct: {
    method: 'GET',
    path: '/product/{id}',
    reads: ['id', 'name', 'description', 'price_cents', 'currency', 'stock', 'image_url', 'category'],
  },
  getCart: {
    method: 'GET',
    path: '/user/{uid}/cart/',
    reads: [
      'items[].id', 'items[].product_id', 'items[].name', 'items[].unit_price_cents',
      'items[].quantity', 'items[].line_total_cents', 'items[].currency', 'items[].available',
      'items[].stock', 'total_cents', 'currency', 'totals[].currency', 'totals[].total_cents',
    ],
  },
  addToCart: { method: 'POST', path: '/user/{uid}/cart/', reads: ['id', 'quantity'] },
  updateCartItem: { method: 'PUT', path: '/user/{uid}/cart/{id}', reads: ['id', 'quantity'] },
  removeCartItem: { method: 'DELETE', path: '/user/{uid}/cart/{id}', reads: [] },
  checkout: { method: 'POST', path: '/user/{uid}/cart/checkout', reads: ['id', 'invoice_id', 'status'] },
  listOrders: {
    method: 'GET',
    path: '/user/{uid}/orders/',
    reads: [
      'items[].id', 'items[].status', 'items[].amount_cents', 'items[].currency',
      'items[].created_at', 'items[].items', 'total', 'limit', 'offset',
    ],
  },
  getOrder: {
    method: 'GET',
    path: '/user/{uid}/orders/{id}',
    reads: [
      'id', 'status', 'amount_cents', 'currency', 'invoice_id', 'created_at', 'paid_at',
      'items[].name', 'items[].quantity', 'items[].unit_price_cents', 'items[].line_total_cents',
    ],
  },
  payInvoice: { method: 'POST', path: '/invoices/{id}/pay', reads: ['status', 'card.brand', 'card.last4'] },
};

/** The fields of a problem+json error the UI shows. */
export const problemFields = ['title', 'detail', 'status', 'code', 'errors[].field', 'errors[].message'];

const API_KEY = 'shop.api';

/**
 * Where the API lives. Same origin when the balancer serves the page; for
 * development, `?api=http://127.0.0.1:8080` (remembered in localStorage,
 * `?api=` with nothing resets it), a `<meta name="shop-api">`, or — on the
 * usual dev-server ports 5173 and 3000 — the launcher's default balancer.
 */
export function apiBase(loc = window.location, storage = window.localStorage) {
  const fromQuery = new URLSearchParams(loc.search).get('api');
  if (fromQuery !== null) {
    if (fromQuery) storage.setItem(API_KEY, fromQuery);
    else storage.removeItem(API_KEY);
  }
  const stored = storage.getItem(API_KEY);
  if (stored) return stored.replace(/\/+$/, '');
  const meta = typeof document !== 'undefined' && document.querySelector('meta[name="shop-api"]');
  if (meta && meta.content) return meta.content.replace(/\/+$/, '');
  if (loc.hostname === 'localhost' && (loc.port === '5173' || loc.port === '3000')) {
    return 'http://127.0.0.1:8080';
  }
  return '';
}

/** An API failure: `problem` is the problem+json body (or one made up for a network error). */
export class ApiError extends Error {
  constructor(problem) {
    super(problem.detail || problem.title || 'Request failed');
    this.problem = problem;
    this.status = problem.status;
    this.code = problem.code;
  }
  /** Per-field messages, `{field: message}`. */
  get fieldErrors() {
    const out = {};
    for (const e of this.problem.errors || []) {
      if (e && typeof e.field === 'string' && !(e.field in out)) out[e.field] = String(e.message || 'invalid');
    }
    return out;
  }
  get network() {
    return this.status === 0;
  }
}

/** Fills `{name}` placeholders from params, each encoded. */
export function expand(template, params = {}) {
  return template.replace(/\{(\w+)\}/g, (_, k) => {
    if (params[k] === undefined || params[k] === null) throw new Error(`missing path parameter ${k}`);
    return encodeURIComponent(String(params[k]));
  });
}

let base = null;
let onUnauthorized = () => {};
let onBusy = () => {};
let inFlight = 0;

/** Sets what happens on a 401 and how the global loading indicator is driven. */
export function configure({ unauthorized, busy, apiBase: b } = {}) {
  if (unauthorized) onUnauthorized = unauthorized;
  if (busy) onBusy = busy;
  if (b !== undefined) base = b;
}

/**
 * Calls one operation. `params` fill the path, `query` becomes the query
 * string (empty values left out), `body` is sent as JSON, `token` as the
 * bearer, `headers` are extra headers. Resolves with the parsed JSON (or
 * null for 204); rejects with an ApiError.
 */
export async function call(name, { params, query, body, token, headers = {}, signal } = {}) {
  const op = operations[name];
  if (!op) throw new Error(`unknown operation ${name}`);
  if (base === null) base = apiBase();
  let url = base + expand(op.path, params);
  if (query) {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') qs.set(k, String(v));
    const s = qs.toString();
    if (s) url += '?' + s;
  }
  const h = { Accept: 'application/json, application/problem+json', ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  inFlight++;
  onBusy(inFlight > 0);
  let res;
  try {
    res = await fetch(url, { method: op.method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), signal });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError({
      status: 0,
      code: 'network_error',
      title: 'Network error',
      detail: 'The shop could not be reached. Check your connection and try again.',
    });
  } finally {
    inFlight--;
    onBusy(inFlight > 0);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const problem = data && typeof data === 'object' && !Array.isArray(data) ? data : {};
    const err = new ApiError({
      status: res.status,
      code: typeof problem.code === 'string' ? problem.code : `http_${res.status}`,
      title: typeof problem.title === 'string' ? problem.title : res.statusText || `Error ${res.status}`,
      detail: typeof problem.detail === 'string' ? problem.detail : '',
      errors: Array.isArray(problem.errors) ? problem.errors : [],
    });
    err.retryAfter = res.headers.get('Retry-After');
    if (res.status === 401 && token) onUnauthorized(err, token);
    throw err;
  }
  if (data === null && text) {
    throw new ApiError({ status: res.status, code: 'bad_response', title: 'Unexpected answer', detail: 'The shop sent an answer the page could not read.' });
  }
  return data;
}

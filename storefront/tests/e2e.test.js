// The storefront in a real browser (Debian's Chromium through playwright-core)
// against a running shop (storefront/tests/run.sh starts one and sets
// SHOP_URL): the whole shopper journey, a double-clicked and a retried
// checkout making one order, a revoked or tampered token sending the shopper
// to the login page with the cart kept, per-field errors beside their fields,
// the account page's 403s for a missing or wrong current password (not a
// failed login: the shopper stays logged in), a loading state on requests,
// failing API answers shown as messages, labelled controls, a phone-sized
// screen without horizontal scroll, and the first load's weight.
// Screenshots go to artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';

const SHOP = process.env.SHOP_URL;
const SITE = process.env.STOREFRONT_URL || SHOP;
assert.ok(SHOP, 'SHOP_URL must point at the balancer (storefront/tests/run.sh sets it)');
const ARTIFACTS = new URL('./artifacts/', import.meta.url);
mkdirSync(ARTIFACTS, { recursive: true });
const WAIT = 15_000;
const RUN = Date.now().toString(36);
let seq = 0;
const email = (what) => `${what}-${RUN}-${++seq}@example.com`;

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
after(async () => {
  if (browser) await browser.close();
});

/** The shop's API directly, to set things up and to check what the page did. */
async function api(method, path, { body, token, headers = {} } = {}) {
  const h = { ...headers };
  if (body !== undefined) h['content-type'] = 'application/json';
  if (token) h.authorization = `Bearer ${token}`;
  const res = await fetch(SHOP + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

async function shopper(what = 'shopper') {
  const creds = { email: email(what), password: 'correct horse battery', name: 'Test Shopper' };
  const r = await api('POST', '/user/', { body: creds });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const l = await api('POST', '/user/login', { body: { email: creds.email, password: creds.password } });
  assert.equal(l.status, 200, JSON.stringify(l.body));
  return { ...creds, token: l.body.token, id: l.body.user_id };
}

async function someProducts(query = '') {
  const r = await api('GET', `/products/?limit=100${query}`);
  assert.equal(r.status, 200);
  assert.ok(r.body.items.length > 0, 'the demo catalog is empty');
  return r.body.items;
}

/**
 * A fresh browser context and page. Page errors and failed loads of our own
 * assets fail the test: a broken module must not pass as an empty page.
 */
async function open(t, { viewport = { width: 1280, height: 900 } } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`console error: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.url().includes('/assets/') && r.status() >= 400) problems.push(`${r.status()} for ${r.url()}`);
  });
  t.after(async () => {
    await context.close();
    assert.deepEqual(problems, [], 'the page reported errors');
  });
  return page;
}

/** A page of the storefront; when it is served apart from the API, ?api= points it at the shop. */
function site(path) {
  if (SITE === SHOP) return SITE + path;
  const u = new URL(SITE + path);
  u.searchParams.set('api', SHOP);
  return u.toString();
}

async function shot(page, name) {
  await page.screenshot({ path: new URL(`${name}.png`, ARTIFACTS).pathname, fullPage: true });
}

async function loginUI(page, who) {
  await page.goto(site('/shop/login'));
  await page.getByLabel('Email').fill(who.email);
  await page.getByLabel('Password', { exact: true }).fill(who.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL((u) => u.pathname !== '/shop/login', { timeout: WAIT });
  await page.getByRole('button', { name: 'Log out' }).waitFor({ timeout: WAIT });
}

async function noHorizontalScroll(page, what) {
  const { scroll, width } = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: window.innerWidth }));
  assert.ok(scroll <= width, `${what}: the page is ${scroll}px wide on a ${width}px screen`);
}

const cents = (text) => Math.round(Number(text.replace(/[^0-9.]/g, '')) * 100);

test('first load: the catalog renders and weighs under 200 KB without product images', async (t) => {
  const page = await open(t);
  const seen = [];
  page.on('requestfinished', async (req) => {
    const res = await req.response();
    const sizes = await req.sizes();
    seen.push({ url: req.url(), type: req.resourceType(), res, transferred: sizes.responseBodySize + sizes.responseHeadersSize });
  });
  await page.goto(site('/'), { waitUntil: 'networkidle' });
  await page.locator('.grid .card').first().waitFor({ timeout: WAIT });
  const own = seen.filter((s) => s.type !== 'image');
  let transferred = 0;
  let gzipped = 0;
  const lines = [];
  for (const s of own) {
    const body = await s.res.body().catch(() => Buffer.alloc(0));
    const gz = gzipSync(body, { level: 9 }).length;
    transferred += s.transferred;
    gzipped += gz;
    lines.push(`${s.transferred}\t${gz}\t${body.length}\t${s.type}\t${new URL(s.url).pathname}`);
  }
  const report = [
    `first load of ${site('/')} without product images: ${own.length} requests`,
    `transferred (as served, headers included): ${transferred} bytes`,
    `bodies gzip-compressed: ${gzipped} bytes`,
    'transferred\tgzip\traw\ttype\tpath',
    ...lines,
  ].join('\n');
  writeFileSync(new URL('page-weight.txt', ARTIFACTS), report + '\n');
  console.log(report);
  assert.ok(own.some((s) => s.url.endsWith('/assets/app.js')), 'app.js was not loaded');
  assert.ok(transferred < 200 * 1024, `first load transferred ${transferred} bytes`);
  await shot(page, 'catalog');
});

test("the shopper's journey: register, browse, search, cart, declined and good cards, paid order, account, logout and login", async (t) => {
  const page = await open(t);
  const me = { email: email('journey'), password: 'correct horse battery', name: 'Ann Shopper' };

  // Register (and be logged in).
  await page.goto(site('/shop/register'));
  await page.getByLabel('Name').fill(me.name);
  await page.getByLabel('Email').fill(me.email);
  await page.getByLabel('Password').fill(me.password);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('button', { name: 'Log out' }).waitFor({ timeout: WAIT });
  await page.locator('.grid .card').first().waitFor({ timeout: WAIT });

  // Pagination lives in the URL and survives a reload.
  const all = await someProducts();
  const total = (await api('GET', '/products/?limit=1')).body.total;
  assert.ok(total > 12, `the demo catalog fills more than one page of 12 (it has ${total})`);
  // The grid's pictures are the catalog's, and they load.
  const firstImage = page.locator('.grid .card img').first();
  assert.equal(new URL(await firstImage.getAttribute('src'), SHOP).pathname, all[0].image_url);
  await page.waitForFunction(() => {
    const img = document.querySelector('.grid .card img');
    return img && img.complete && img.naturalWidth > 0;
  }, null, { timeout: WAIT });
  await page.getByRole('link', { name: /Next/ }).click();
  await page.waitForURL(/page=2/);
  await page.reload();
  await page.locator('.grid .card').first().waitFor({ timeout: WAIT });
  assert.match(await page.locator('.summary').textContent(), /^13–/);
  assert.match(await page.locator('.pager [aria-current=page]').textContent(), /Page 2 of/);
  const pageTwo = (await api('GET', '/products/?limit=12&offset=12')).body.items.map((p) => p.name);
  assert.deepEqual(await page.locator('.card-name').allTextContents(), pageTwo);

  // Sort by price, low to high: the URL says so and the grid is in order.
  await page.goto(site('/'));
  await page.getByLabel('Sort by').selectOption('price_asc');
  await page.waitForURL(/sort=price_asc/);
  await page.locator('.grid .card').first().waitFor({ timeout: WAIT });
  const prices = (await page.locator('.card-price').allTextContents()).map(cents);
  assert.deepEqual(prices, [...prices].sort((a, b) => a - b), 'sorted by price');
  assert.equal(prices[0], Math.min(...all.map((p) => p.price_cents)));
  // By name and by newest: the grid shows the API's first page in that order.
  for (const sort of ['name_asc', 'newest']) {
    await page.getByLabel('Sort by').selectOption(sort);
    await page.waitForURL(new RegExp(`sort=${sort}`));
    const expected = (await api('GET', `/products/?limit=12&sort=${sort}`)).body.items.map((p) => p.name);
    await page.waitForFunction((want) => [...document.querySelectorAll('.grid .card-name')].map((e) => e.textContent).join('\n') === want,
      expected.join('\n'), { timeout: WAIT }).catch(() => {});
    assert.deepEqual(await page.locator('.card-name').allTextContents(), expected, `sorted by ${sort}`);
  }

  // A category narrows the grid to that category.
  const category = all[0].category;
  assert.ok(category, 'products have a category');
  await page.goto(site('/'));
  await page.locator('.categories a', { hasText: new RegExp(`^${category.replace(/-/g, ' ')}`, 'i') }).first().click();
  await page.waitForURL(new RegExp(`category=${category}`));
  await page.locator('.grid .card').first().waitFor({ timeout: WAIT });
  const names = await page.locator('.card-name').allTextContents();
  const expected = all.filter((p) => p.category === category).map((p) => p.name);
  assert.deepEqual(new Set(names), new Set(expected.slice(0, 12)));

  // Search.
  const target = all.find((p) => p.stock > 5) || all[0];
  const word = target.name.split(/\s+/)[0];
  await page.goto(site('/'));
  await page.getByRole('searchbox').fill(word);
  await page.getByRole('button', { name: 'Search' }).click();
  await page.waitForURL(/q=/);
  await page.locator('.card-name', { hasText: target.name }).first().waitFor({ timeout: WAIT });
  for (const n of await page.locator('.card-name').allTextContents()) assert.match(n.toLowerCase(), new RegExp(word.toLowerCase().replace(/[^a-z0-9]/g, '.')));

  // The product page, add 2 to the cart.
  await page.locator('.card-link', { hasText: target.name }).first().click();
  await page.getByRole('heading', { name: target.name }).waitFor({ timeout: WAIT });
  assert.match(await page.locator('.stock').textContent(), /in stock|left/i);
  assert.equal(await page.locator('.product .description').textContent(), target.description);
  assert.equal(cents(await page.locator('.product .price').textContent()), target.price_cents);
  await page.waitForFunction(() => {
    const img = document.querySelector('.product img.hero');
    return img && img.complete && img.naturalWidth > 0;
  }, null, { timeout: WAIT });
  await page.getByLabel('Quantity').fill('2');
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await page.getByText(/Added 2 ×/).waitFor({ timeout: WAIT });
  await shot(page, 'product');

  // A second product, added then removed in the cart.
  const other = all.find((p) => p.id !== target.id && p.stock > 0);
  await page.goto(site(`/shop/products/${other.id}`));
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await page.getByText(/Added 1 ×/).waitFor({ timeout: WAIT });

  await page.getByRole('link', { name: /^Cart/ }).click();
  await page.locator('.line').nth(1).waitFor({ timeout: WAIT });
  const line = page.locator('.line', { hasText: target.name });
  await line.getByLabel('Quantity').fill('3');
  await line.getByRole('button', { name: 'Update' }).click();
  const totalText = page.locator('[data-total]');
  await page.waitForFunction((want) => {
    const el = document.querySelector('[data-total]');
    return el && Math.round(Number(el.textContent.replace(/[^0-9.]/g, '')) * 100) === want;
  }, 3 * target.price_cents + other.price_cents, { timeout: WAIT });
  await page.locator('.line', { hasText: other.name }).getByRole('button', { name: /Remove/ }).click();
  await page.waitForFunction(() => document.querySelectorAll('.line').length === 1, null, { timeout: WAIT });
  assert.equal(cents(await totalText.textContent()), 3 * target.price_cents);
  // A reload on a deep link opens the same page, still logged in.
  await page.reload();
  await page.locator('.line', { hasText: target.name }).waitFor({ timeout: WAIT });
  assert.equal(cents(await totalText.textContent()), 3 * target.price_cents);
  await shot(page, 'cart');

  // Check out: the order page, awaiting payment.
  await page.getByRole('button', { name: 'Check out' }).click();
  await page.waitForURL(/\/shop\/orders\/[^/]+$/, { timeout: WAIT });
  await page.locator('[data-status=pending_payment]').waitFor({ timeout: WAIT });

  // Each test card's decline, as a shopper reads it; the form stays usable.
  const pay = async (number, expiry = '12/30') => {
    await page.getByLabel('Card number').fill(number);
    await page.getByLabel('Expiry (MM/YY)').fill(expiry);
    await page.getByLabel('CVC').fill('123');
    await page.locator('#pay').click();
  };
  for (const [card, message] of [
    ['4000000000000002', /card was declined/i],
    ['4000000000009995', /insufficient funds/i],
    ['4000000000000069', /expired/i],
    ['4000000000000119', /try again/i],
  ]) {
    await pay(card);
    await page.locator('.pay [role=alert]', { hasText: message }).waitFor({ timeout: WAIT });
    assert.ok(await page.locator('#pay').isEnabled());
  }
  await shot(page, 'declined');
  // A number failing the Luhn check: the message is beside the card number.
  await pay('4242424242424241');
  await page.locator('.field[data-field=card_number] .field-error:not(:empty)').waitFor({ timeout: WAIT });

  // The good card: paid, and the page shows it without a reload.
  await pay('4242 4242 4242 4242');
  await page.locator('.order-status [data-status=paid]').waitFor({ timeout: WAIT });
  await page.getByText(/payment was received/i).waitFor();
  await shot(page, 'order-paid');

  // Orders history.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Orders' }).click();
  await page.locator('.order-row [data-status=paid]').first().waitFor({ timeout: WAIT });
  assert.equal(await page.locator('.order-row').count(), 1);

  // Account: a new name, then a new password (with the current one).
  await page.getByRole('link', { name: 'Account' }).click();
  await page.getByLabel('Name').fill('Ann Renamed');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByText('Your changes were saved.').waitFor({ timeout: WAIT });
  const newPassword = 'an even better passphrase';
  await page.getByLabel('New password').fill(newPassword);
  await page.getByLabel('Current password').fill(me.password);
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByText('Your changes were saved.').waitFor({ timeout: WAIT });
  await shot(page, 'account');
  // A new password ends the old sessions; the page logged in again, so a
  // reload still shows the account.
  await page.reload();
  await page.getByLabel('Name').waitFor({ timeout: WAIT });
  assert.equal(new URL(page.url()).pathname, '/shop/account');

  // A new email (with the current password): saved, still logged in.
  const newEmail = email('journey-renamed');
  await page.getByLabel('Email').fill(newEmail);
  await page.getByLabel('Current password').fill(newPassword);
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByText('Your changes were saved.').waitFor({ timeout: WAIT });
  await page.reload();
  await page.getByLabel('Email').waitFor({ timeout: WAIT });
  assert.equal(await page.getByLabel('Email').inputValue(), newEmail);

  // Log out, then log in with the new email and password; the name stuck.
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByText('You have been logged out.').waitFor({ timeout: WAIT });
  await loginUI(page, { email: newEmail, password: newPassword });
  await page.goto(site('/shop/account'));
  assert.equal(await page.getByLabel('Name').inputValue(), 'Ann Renamed');
});

test('a double-clicked checkout, and a retry after the answer was lost, each make one order', async (t) => {
  const page = await open(t);
  const me = await shopper('double');
  const [p] = await someProducts();
  assert.equal((await api('POST', `/user/${me.id}/cart/`, { token: me.token, body: { product_id: p.id, quantity: 1 } })).status, 201);
  await loginUI(page, me);

  // A double click: the button is disabled while the first is in flight.
  await page.goto(site('/shop/cart'));
  await page.getByRole('button', { name: 'Check out' }).dblclick();
  await page.waitForURL(/\/shop\/orders\/[^/]+$/, { timeout: WAIT });
  let orders = await api('GET', `/user/${me.id}/orders/`, { token: me.token });
  assert.equal(orders.body.total, 1, 'a double click made more than one order');

  // The network loses the first answer after the shop made the order: the
  // retry reuses the attempt's key and gets that same order back.
  assert.equal((await api('POST', `/user/${me.id}/cart/`, { token: me.token, body: { product_id: p.id, quantity: 2 } })).status, 201);
  const keys = [];
  await page.route('**/cart/checkout', async (route) => {
    keys.push(route.request().headers()['idempotency-key']);
    if (keys.length === 1) {
      await route.fetch(); // the shop makes the order…
      await route.abort('connectionreset'); // …and the page never hears of it
    } else {
      await route.continue();
    }
  });
  await page.goto(site('/shop/cart'));
  await page.getByRole('button', { name: 'Check out' }).click();
  await page.locator('[role=alert]', { hasText: /could not be reached/ }).waitFor({ timeout: WAIT });
  await page.getByRole('button', { name: 'Check out' }).click();
  await page.waitForURL(/\/shop\/orders\/[^/]+$/, { timeout: WAIT });
  assert.equal(keys.length, 2);
  assert.ok(keys[0], 'no Idempotency-Key sent');
  assert.equal(keys[0], keys[1], 'the retry used a new key');
  orders = await api('GET', `/user/${me.id}/orders/`, { token: me.token });
  assert.equal(orders.body.total, 2, 'the retry made a second order');
  assert.ok(page.url().endsWith(`/shop/orders/${orders.body.items[0].id}`));

  // The next attempt is a new one, with a new key.
  assert.equal((await api('POST', `/user/${me.id}/cart/`, { token: me.token, body: { product_id: p.id, quantity: 1 } })).status, 201);
  await page.goto(site('/shop/cart'));
  await page.getByRole('button', { name: 'Check out' }).click();
  await page.waitForURL(/\/shop\/orders\/[^/]+$/, { timeout: WAIT });
  assert.equal(keys.length, 3);
  assert.notEqual(keys[2], keys[0]);
});

test('a tampered or revoked token sends the shopper to log in with a message, the cart kept', async (t) => {
  const page = await open(t);
  const me = await shopper('token');
  const [p] = await someProducts();
  await api('POST', `/user/${me.id}/cart/`, { token: me.token, body: { product_id: p.id, quantity: 4 } });
  await loginUI(page, me);

  // Tamper with the stored token.
  await page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem('shop.session'));
    s.token = s.token.slice(0, -4) + 'AAAA';
    localStorage.setItem('shop.session', JSON.stringify(s));
  });
  await page.goto(site('/shop/cart'));
  await page.waitForURL(/\/shop\/login\?next=/, { timeout: WAIT });
  await page.getByText(/session has expired or was signed out/i).waitFor({ timeout: WAIT });
  await shot(page, 'login-expired');
  // Log in again: back to the cart, which is still there.
  await page.getByLabel('Email').fill(me.email);
  await page.getByLabel('Password', { exact: true }).fill(me.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(/\/shop\/cart$/, { timeout: WAIT });
  await page.locator('.line', { hasText: p.name }).waitFor({ timeout: WAIT });
  assert.equal(await page.locator('.line .qty').inputValue(), '4');

  // An expired token (expires_at passed) is not even sent.
  await page.evaluate(() => {
    const s = JSON.parse(localStorage.getItem('shop.session'));
    s.expires_at = '2000-01-01T00:00:00Z';
    localStorage.setItem('shop.session', JSON.stringify(s));
  });
  await page.goto(site('/shop/orders'));
  await page.waitForURL(/\/shop\/login/, { timeout: WAIT });
  await page.getByText(/session has expired/i).waitFor({ timeout: WAIT });
  await loginUI(page, me);

  // Delete the account in the UI: logged out with a message, and the login now fails.
  await page.goto(site('/shop/account'));
  await page.getByRole('button', { name: 'Delete my account…' }).click();
  await page.getByRole('button', { name: 'Yes, delete my account' }).click();
  await page.getByText('Your account was deleted.').waitFor({ timeout: WAIT });
  await page.getByLabel('Email').fill(me.email);
  await page.getByLabel('Password', { exact: true }).fill(me.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('[role=alert]').waitFor({ timeout: WAIT });

  // Revoked elsewhere: another shopper's account deleted through the API while logged in here.
  const other = await shopper('revoked');
  await loginUI(page, other);
  await page.goto(site('/shop/orders'));
  await page.getByRole('heading', { name: 'Your orders' }).waitFor({ timeout: WAIT });
  assert.equal((await api('DELETE', `/user/${other.id}`, { token: other.token })).status, 204);
  // The users service refuses a deleted account's token at once.
  await page.getByRole('link', { name: 'Account' }).click();
  await page.waitForURL(/\/shop\/login/, { timeout: WAIT });
  await page.getByText(/session has expired or was signed out/i).waitFor({ timeout: WAIT });
});

test('a bad form shows each API error beside its field, and a conflict as a message', async (t) => {
  const page = await open(t);
  await page.goto(site('/shop/register'));
  await page.getByLabel('Name').fill('Bad Form');
  await page.getByLabel('Email').fill('not-an-email');
  await page.getByLabel('Password').fill('short');
  await page.getByRole('button', { name: 'Create account' }).click();
  const emailError = page.locator('.field[data-field=email] .field-error');
  const passwordError = page.locator('.field[data-field=password] .field-error');
  await emailError.filter({ hasText: /\S/ }).waitFor({ timeout: WAIT });
  await passwordError.filter({ hasText: /\S/ }).waitFor({ timeout: WAIT });
  assert.equal(await page.getByLabel('Email').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.locator('.field[data-field=name] .field-error').textContent(), '');
  await page.locator('.form-problem [role=alert]').waitFor();
  assert.doesNotMatch(await page.locator('main').textContent(), /"status"|"code"|\{"/, 'raw JSON on the page');
  await shot(page, 'register-errors');

  // The email taken: the API's title and detail, no raw JSON.
  const taken = await shopper('taken');
  await page.getByLabel('Email').fill(taken.email);
  await page.getByLabel('Password').fill('long enough password');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.locator('.form-problem [role=alert][data-code=email_taken]').waitFor({ timeout: WAIT });
  assert.equal(await emailError.textContent(), '', 'old field errors were cleared');
});

async function admin() {
  const l = await api('POST', '/user/login', { body: { email: process.env.SHOP_ADMIN_EMAIL, password: process.env.SHOP_ADMIN_PASSWORD } });
  assert.equal(l.status, 200, 'the admin cannot log in (SHOP_ADMIN_EMAIL/SHOP_ADMIN_PASSWORD)');
  return l.body.token;
}

test("the cart shows the API's line-level errors: a product gone, the cart full", async (t) => {
  const page = await open(t);
  const me = await shopper('lines');
  const token = await admin();
  const made = await api('POST', '/product/', { token, body: { name: `Short-lived ${RUN}`, description: 'Soon gone.', price_cents: 500, stock: 3 } });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  const [kept] = await someProducts();
  await api('POST', `/user/${me.id}/cart/`, { token: me.token, body: { product_id: made.body.id, quantity: 1 } });
  await api('POST', `/user/${me.id}/cart/`, { token: me.token, body: { product_id: kept.id, quantity: 1 } });
  assert.equal((await api('DELETE', `/product/${made.body.id}`, { token })).status, 204);
  await loginUI(page, me);
  await page.goto(site('/shop/cart'));
  const gone = page.locator('.line.gone', { hasText: `Short-lived ${RUN}` });
  await gone.getByText(/no longer available/).waitFor({ timeout: WAIT });
  assert.ok(await page.getByRole('button', { name: 'Check out' }).isDisabled(), 'checkout allowed with a product gone');
  assert.equal(cents(await page.locator('[data-total]').textContent()), kept.price_cents, 'the gone product is not in the total');
  await gone.getByRole('button', { name: /Remove/ }).click();
  await page.waitForFunction(() => !document.querySelector('.line.gone'), null, { timeout: WAIT });
  assert.ok(await page.getByRole('button', { name: 'Check out' }).isEnabled());

  // Fill the cart to its limit of lines through the API, then add one more in the page.
  const full = await shopper('full');
  const lines = [];
  for (let i = 0; lines.length < 100; i++) {
    const p = await api('POST', '/product/', { token, body: { name: `Filler ${RUN} ${i}`, description: 'One of many.', price_cents: 100, stock: 10 } });
    assert.equal(p.status, 201);
    const added = await api('POST', `/user/${full.id}/cart/`, { token: full.token, body: { product_id: p.body.id, quantity: 1 } });
    if (added.status === 409) break;
    assert.equal(added.status, 201, JSON.stringify(added.body));
    lines.push(p.body.id);
  }
  await loginUI(page, full);
  await page.goto(site(`/shop/products/${kept.id}`));
  await page.getByRole('button', { name: 'Add to cart' }).click();
  await page.locator('form.add [role=alert][data-code=cart_full]').waitFor({ timeout: WAIT });
  await shot(page, 'cart-full');
});

test('a phone-sized screen: every page fits without horizontal scroll', async (t) => {
  const page = await open(t, { viewport: { width: 390, height: 844 } });
  const me = await shopper('phone');
  const [p] = await someProducts();
  await page.goto(site('/'));
  await page.locator('.grid .card').first().waitFor({ timeout: WAIT });
  await noHorizontalScroll(page, 'catalog');
  await shot(page, 'mobile-catalog');
  await page.goto(site(`/shop/products/${p.id}`));
  await page.getByRole('heading', { name: p.name }).waitFor({ timeout: WAIT });
  await noHorizontalScroll(page, 'product');
  await loginUI(page, me);
  await api('POST', `/user/${me.id}/cart/`, { token: me.token, body: { product_id: p.id, quantity: 2 } });
  await page.goto(site('/shop/cart'));
  await page.locator('.line').first().waitFor({ timeout: WAIT });
  await noHorizontalScroll(page, 'cart');
  await shot(page, 'mobile-cart');
  await page.getByRole('button', { name: 'Check out' }).click();
  await page.locator('#pay').waitFor({ timeout: WAIT });
  await noHorizontalScroll(page, 'order');
  await page.goto(site('/shop/account'));
  await page.getByLabel('Name').waitFor({ timeout: WAIT });
  await noHorizontalScroll(page, 'account');
});

test('keyboard only: search, open a product and add it to the cart', async (t) => {
  const page = await open(t);
  const me = await shopper('keys');
  await loginUI(page, me);
  await page.goto(site('/'));
  await page.locator('.grid .card').first().waitFor({ timeout: WAIT });
  await page.getByRole('searchbox').focus();
  await page.keyboard.type('a');
  await page.keyboard.press('Enter');
  await page.waitForURL(/q=a/);
  await page.locator('.card-link').first().focus();
  await page.keyboard.press('Enter');
  await page.getByRole('button', { name: 'Add to cart' }).waitFor({ timeout: WAIT });
  await page.getByLabel('Quantity').focus();
  await page.keyboard.press('Enter');
  await page.getByText(/Added 1 ×/).waitFor({ timeout: WAIT });
  const cart = await api('GET', `/user/${me.id}/cart/`, { token: me.token });
  assert.equal(cart.body.items.length, 1);
});

test('the account page: a missing or wrong current password is shown as such, and the shopper stays logged in', async (t) => {
  const page = await open(t);
  const me = await shopper('current');
  await loginUI(page, me);
  await page.goto(site('/shop/account'));
  await page.getByLabel('Email').waitFor({ timeout: WAIT });
  const stored = () => page.evaluate(() => JSON.parse(localStorage.getItem('shop.session')));
  const session = await stored();
  const currentError = page.locator('.field[data-field=current_password] .field-error');
  const problemBox = page.locator('form.account .form-problem [role=alert]');

  /** What a shopper who stays logged in sees: the account page, the header, a live token. */
  async function stillLoggedIn(what) {
    assert.equal(new URL(page.url()).pathname, '/shop/account', `${what}: left the account page`);
    assert.ok(await page.getByRole('button', { name: 'Log out' }).isVisible(), `${what}: logged out`);
    assert.deepEqual(await stored(), session, `${what}: the session changed`);
    const user = await api('GET', `/user/${me.id}`, { token: me.token });
    assert.equal(user.status, 200, `${what}: the token no longer works`);
    assert.equal(user.body.email, me.email, `${what}: the email changed`);
  }

  // A new email without the current password: 403 current_password_required.
  await page.getByLabel('Email').fill(email('unconfirmed'));
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('form.account .form-problem [role=alert][data-code=current_password_required]').waitFor({ timeout: WAIT });
  assert.match(await problemBox.textContent(), /current password/i);
  assert.doesNotMatch(await problemBox.textContent(), /wrong email or password|email or password is wrong|log ?in/i, 'headlined as a failed login');
  assert.match(await currentError.textContent(), /current password/i);
  assert.equal(await page.getByLabel('Current password').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.getByLabel('Current password').evaluate((el) => el === document.activeElement), true, 'focus on the field to fix');
  await stillLoggedIn('no current password');
  await shot(page, 'account-current-password-required');

  // A new password with a wrong current password: 403 invalid_credentials,
  // which here is no failed login: no "wrong email or password", no logout.
  await page.getByLabel('Email').fill(me.email);
  await page.getByLabel('New password').fill('a brand new passphrase');
  await page.getByLabel('Current password').fill('not my password at all');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.locator('form.account .form-problem [role=alert][data-code=invalid_credentials]').waitFor({ timeout: WAIT });
  assert.match(await problemBox.textContent(), /current password is not right/i);
  assert.doesNotMatch(await problemBox.textContent(), /wrong email or password|email or password is wrong|log ?in/i, 'headlined as a failed login');
  assert.match(await currentError.textContent(), /current password is not right/i);
  await stillLoggedIn('a wrong current password');
  await shot(page, 'account-wrong-current-password');

  // A reload still shows the account, and the right password then works
  // (so the wrong one changed nothing); the old messages go. Every attempt
  // counts against the login limit (5 a minute per email), so the test
  // makes no more than it needs: two logins, two checks, one login again.
  await page.reload();
  await page.getByLabel('New password').waitFor({ timeout: WAIT });
  await stillLoggedIn('a reload');
  await page.getByLabel('New password').fill('a brand new passphrase');
  await page.getByLabel('Current password').fill(me.password);
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByText('Your changes were saved.').waitFor({ timeout: WAIT });
  assert.equal(await problemBox.count(), 0);
  assert.equal(await currentError.textContent(), '');
  // The page logged in again with the new password (a new password ends
  // the account's sessions): a reload stays on the account.
  assert.notDeepEqual(await stored(), session);
  await page.reload();
  await page.getByLabel('Email').waitFor({ timeout: WAIT });
  assert.equal(new URL(page.url()).pathname, '/shop/account');
});

test('every request shows a loading state, and a failing API shows its problem, never a blank page or raw JSON', async (t) => {
  const page = await open(t);
  const me = await shopper('loading');
  const [p] = await someProducts();

  // A slow catalog: the page says it is loading, and the header's busy bar runs.
  const list = /\/products\/\?/;
  let release;
  const held = new Promise((r) => (release = r));
  await page.route(list, async (route) => {
    await held;
    await route.continue();
  });
  await page.goto(site('/'));
  await page.locator('.results .loading', { hasText: /Loading/ }).waitFor({ timeout: WAIT });
  assert.ok(await page.evaluate(() => document.documentElement.classList.contains('busy')), 'no busy state while loading');
  release();
  await page.locator('.grid .card').first().waitFor({ timeout: WAIT });
  await page.waitForFunction(() => !document.documentElement.classList.contains('busy'), null, { timeout: WAIT });
  await page.unroute(list);

  // A button sending a request is disabled and says so until the answer.
  await loginUI(page, me);
  await page.goto(site(`/shop/products/${p.id}`));
  let releaseAdd;
  const heldAdd = new Promise((r) => (releaseAdd = r));
  await page.route('**/cart/', async (route) => {
    if (route.request().method() === 'POST') await heldAdd;
    await route.continue();
  });
  await page.getByRole('button', { name: 'Add to cart' }).click();
  const adding = page.locator('#add-to-cart');
  await page.waitForFunction(() => document.querySelector('#add-to-cart').textContent === 'Adding…', null, { timeout: WAIT });
  assert.ok(await adding.isDisabled());
  assert.equal(await adding.getAttribute('aria-busy'), 'true');
  releaseAdd();
  await page.getByText(/Added 1 ×/).waitFor({ timeout: WAIT });
  assert.ok(await adding.isEnabled());
  await page.unroute('**/cart/');

  // The catalog failing with a problem+json: its headline and detail, and a retry.
  await page.route(list, (route) => route.fulfill({
    status: 503,
    contentType: 'application/problem+json',
    body: JSON.stringify({ type: 'about:blank', title: 'Service Unavailable', status: 503, code: 'products_unavailable', detail: 'The products service is restarting.' }),
  }));
  await page.goto(site('/'));
  const box = page.locator('.results [role=alert][data-code=products_unavailable]');
  await box.waitFor({ timeout: WAIT });
  assert.match(await box.textContent(), /catalog is unavailable/i);
  assert.match(await box.textContent(), /restarting/);
  await page.unroute(list);
  await box.getByRole('button', { name: 'Try again' }).click();
  await page.locator('.grid .card').first().waitFor({ timeout: WAIT });

  // A page whose API answers something that is not JSON at all (a proxy's
  // HTML error page): a readable message, not the HTML and not a blank page.
  await page.route(`**/product/${p.id}`, (route) => route.fulfill({ status: 502, contentType: 'text/html', body: '<html><body><h1>502 Bad Gateway</h1>{"raw":true}</body></html>' }));
  await page.goto(site(`/shop/products/${p.id}`));
  await page.getByRole('heading', { name: 'Something went wrong' }).waitFor({ timeout: WAIT });
  await page.locator('main [role=alert]').waitFor({ timeout: WAIT });
  const text = await page.locator('main').textContent();
  assert.doesNotMatch(text, /<html|\{"raw"/, 'the raw answer is on the page');
  assert.ok(await page.getByRole('link', { name: 'Back to the shop' }).isVisible());
  await page.unroute(`**/product/${p.id}`);

  // A product that does not exist: a page saying so, with a way back.
  await page.goto(site(`/shop/products/${crypto.randomUUID()}`));
  await page.getByRole('heading', { name: 'This product is no longer available' }).waitFor({ timeout: WAIT });
  assert.ok(await page.getByRole('link', { name: 'Browse the catalog' }).isVisible());
  // An address the storefront does not know: its own not-found page.
  await page.goto(site('/shop/no-such-page'));
  await page.getByRole('heading', { name: 'Page not found' }).waitFor({ timeout: WAIT });
});

test('every form control on every page has a label', async (t) => {
  const page = await open(t);
  const me = await shopper('labels');
  const [p] = await someProducts();
  await api('POST', `/user/${me.id}/cart/`, { token: me.token, body: { product_id: p.id, quantity: 1 } });
  /** Inputs, selects and buttons in <main> without an accessible name. */
  const unlabelled = () => page.evaluate(() => [...document.querySelectorAll('main input, main select, main textarea, main button')]
    .filter((el) => el.type !== 'hidden')
    .filter((el) => !((el.labels && el.labels.length) || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || (el.tagName === 'BUTTON' && el.textContent.trim())))
    .map((el) => el.outerHTML.slice(0, 120)));
  const pages = [
    ['/shop/register', () => page.getByRole('button', { name: 'Create account' })],
    ['/shop/login', () => page.getByRole('button', { name: 'Log in' })],
    ['/', () => page.locator('.grid .card').first()],
    [`/shop/products/${p.id}`, () => page.getByRole('button', { name: 'Add to cart' })],
  ];
  for (const [path, ready] of pages) {
    await page.goto(site(path));
    await ready().waitFor({ timeout: WAIT });
    assert.deepEqual(await unlabelled(), [], `unlabelled controls on ${path}`);
  }
  await loginUI(page, me);
  for (const [path, ready] of [
    ['/shop/cart', () => page.getByRole('button', { name: 'Check out' })],
    ['/shop/account', () => page.getByRole('button', { name: 'Save changes' })],
  ]) {
    await page.goto(site(path));
    await ready().waitFor({ timeout: WAIT });
    assert.deepEqual(await unlabelled(), [], `unlabelled controls on ${path}`);
  }
  await page.goto(site('/shop/cart'));
  await page.getByRole('button', { name: 'Check out' }).click();
  await page.locator('#pay').waitFor({ timeout: WAIT });
  assert.deepEqual(await unlabelled(), [], 'unlabelled controls on the order page');
});

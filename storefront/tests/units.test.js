// The storefront's pure helpers, without a browser: the card expiry parser
// and the ApiError's per-field messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseExpiry } from '../public/assets/views/orders.js';
import { ApiError } from '../public/assets/api.js';

test('an expiry is MM/YY or MM/YYYY, spaces allowed', () => {
  assert.deepEqual(parseExpiry('12/30'), { exp_month: 12, exp_year: 30 });
  assert.deepEqual(parseExpiry(' 1 / 2031 '), { exp_month: 1, exp_year: 2031 });
  for (const bad of ['', '12', '1230', '12/3', '12/203', 'ab/cd', '123/30']) assert.equal(parseExpiry(bad), null, bad);
});

test("an ApiError's field messages: the first per field, junk entries ignored", () => {
  const e = new ApiError({ status: 422, title: 'Unprocessable Entity', errors: [
    { field: 'email', message: 'must be a valid email address' },
    { field: 'email', message: 'second' },
    { message: 'no field' },
    null,
  ] });
  assert.deepEqual(e.fieldErrors, { email: 'must be a valid email address' });
  assert.equal(e.message, 'Unprocessable Entity');
  assert.equal(new ApiError({ status: 0 }).network, true);
});

// The storefront's API client against the contract: every operation in
// public/assets/api.js exists in ../../openapi.json with its method, and every
// response field the UI reads is in that operation's 2xx response schema, so
// a change to the contract fails here instead of breaking the page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { operations, problemFields, expand, apiBase } from '../public/assets/api.js';

const spec = JSON.parse(readFileSync(new URL('../../openapi.json', import.meta.url), 'utf8'));

function resolve(node) {
  let n = node;
  for (let i = 0; n && n.$ref; i++) {
    assert.ok(i < 20, `$ref loop at ${n.$ref}`);
    assert.ok(n.$ref.startsWith('#/'), `external $ref ${n.$ref}`);
    n = n.$ref.slice(2).split('/').reduce((o, k) => o && o[k.replace(/~1/g, '/').replace(/~0/g, '~')], spec);
    assert.ok(n, `dangling $ref ${node.$ref}`);
  }
  return n;
}

/** The schemas a value may match: allOf/anyOf/oneOf flattened. */
function variants(schema) {
  const s = resolve(schema);
  const parts = [...(s.allOf || []), ...(s.anyOf || []), ...(s.oneOf || [])];
  return parts.length ? [s, ...parts.flatMap(variants)] : [s];
}

/** Whether a path like `items[].name` or `card.last4` exists in a schema. */
function hasField(schema, path) {
  const [head, ...rest] = path.split('.');
  const array = head.endsWith('[]');
  const name = array ? head.slice(0, -2) : head;
  for (const v of variants(schema)) {
    const prop = v.properties && v.properties[name];
    if (!prop) continue;
    let next = resolve(prop);
    if (array) {
      const items = variants(next).find((x) => x.items);
      if (!items) continue;
      next = items.items;
    }
    if (!rest.length || hasField(next, rest.join('.'))) return true;
  }
  return false;
}

function successSchema(op) {
  const codes = Object.keys(op.responses || {}).filter((c) => /^2\d\d$/.test(c));
  assert.ok(codes.length, 'no 2xx response');
  const res = resolve(op.responses[codes[0]]);
  const media = res.content && (res.content['application/json'] || Object.values(res.content)[0]);
  return { code: codes[0], schema: media && media.schema };
}

for (const [name, op] of Object.entries(operations)) {
  test(`${name}: ${op.method} ${op.path} is in openapi.json`, () => {
    const item = spec.paths[op.path];
    assert.ok(item, `path ${op.path} is not in openapi.json`);
    const o = item[op.method.toLowerCase()];
    assert.ok(o, `${op.method} ${op.path} is not in openapi.json`);
    for (const p of op.path.match(/\{\w+\}/g) || []) {
      const params = [...(item.parameters || []), ...(o.parameters || [])].map(resolve);
      assert.ok(params.some((x) => x.in === 'path' && `{${x.name}}` === p), `${p} is not a path parameter of ${op.path}`);
    }
  });
  test(`${name}: the fields the UI reads are in the response schema`, () => {
    const o = spec.paths[op.path] && spec.paths[op.path][op.method.toLowerCase()];
    assert.ok(o, `${op.method} ${op.path} missing`);
    const { code, schema } = successSchema(o);
    if (!op.reads.length) return;
    assert.ok(schema, `${code} of ${op.method} ${op.path} has no JSON schema, yet the UI reads ${op.reads}`);
    for (const f of op.reads) assert.ok(hasField(schema, f), `${op.method} ${op.path} ${code}: no field ${f} in the schema`);
  });
}

test('the problem fields the UI shows are in the Problem schema', () => {
  for (const f of problemFields) assert.ok(hasField(spec.components.schemas.Problem, f), `Problem has no ${f}`);
});

test('the field checker itself tells a missing field from a present one', () => {
  const cart = spec.components.schemas.Cart;
  assert.ok(hasField(cart, 'items[].name'));
  assert.ok(!hasField(cart, 'items[].no_such_field'));
  assert.ok(!hasField(cart, 'no_such_field'));
});

test('path templates are filled with encoded parameters and refuse a missing one', () => {
  assert.equal(expand('/user/{uid}/cart/{id}', { uid: 'a b', id: 7 }), '/user/a%20b/cart/7');
  assert.throws(() => expand('/user/{uid}/cart/', {}));
});

test('the API base: same origin by default, ?api= and the dev-server ports for development', () => {
  const store = () => {
    const m = new Map();
    return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, v), removeItem: (k) => m.delete(k) };
  };
  const loc = (href) => new URL(href);
  assert.equal(apiBase(loc('http://127.0.0.1:8080/shop/cart'), store()), '');
  assert.equal(apiBase(loc('http://localhost:5173/'), store()), 'http://127.0.0.1:8080');
  const s = store();
  assert.equal(apiBase(loc('http://localhost:5173/?api=http://127.0.0.1:9080/'), s), 'http://127.0.0.1:9080');
  assert.equal(apiBase(loc('http://localhost:5173/'), s), 'http://127.0.0.1:9080', 'remembered');
  assert.equal(apiBase(loc('http://localhost:5173/?api='), s), 'http://127.0.0.1:8080', 'reset');
});

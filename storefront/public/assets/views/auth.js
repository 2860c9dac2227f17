//! Log in and register. After logging in the shopper goes back to the page
//! that sent them here (?next=, same-site paths only).

import { call, changed, session } from '../shop.js';
import { h, field, busy, showFormError, clearFormError, notice } from '../dom.js';
import { navigate, query } from '../router.js';

function nextPath() {
  const next = query().next || '';
  // Only our own pages: never an absolute URL or a protocol-relative one.
  return next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

async function logIn(email, password) {
  const s = await call('login', { body: { email, password } });
  session.save(s);
  changed();
}

export async function login(main) {
  document.title = 'Log in — Shop';
  const flash = session.takeNotice();
  const form = h('form.auth', { novalidate: true },
    field('Email', 'email', { type: 'email', autocomplete: 'email', required: true }),
    field('Password', 'password', { type: 'password', autocomplete: 'current-password', required: true }),
    h('button.primary', { type: 'submit', 'data-busy-label': 'Logging in…' }, 'Log in'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const button = form.querySelector('button[type=submit]');
    busy(button, async () => {
      clearFormError(form);
      try {
        await logIn(form.email.value.trim(), form.password.value);
        await navigate(nextPath(), { replace: true });
      } catch (err) {
        showFormError(form, err);
      }
    });
  });
  main.replaceChildren(h('div.narrow',
    h('h1', 'Log in'),
    flash && notice(flash.text, flash.kind),
    form,
    h('p', 'New here? ', h('a', { href: `/shop/register${location.search}` }, 'Create an account'))));
  form.email.focus();
}

export async function register(main) {
  document.title = 'Register — Shop';
  const form = h('form.auth', { novalidate: true },
    field('Name', 'name', { type: 'text', autocomplete: 'name', required: true }),
    field('Email', 'email', { type: 'email', autocomplete: 'email', required: true }),
    field('Password', 'password', { type: 'password', autocomplete: 'new-password', required: true }, 'At least 8 characters.'),
    h('button.primary', { type: 'submit', 'data-busy-label': 'Creating account…' }, 'Create account'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const button = form.querySelector('button[type=submit]');
    busy(button, async () => {
      clearFormError(form);
      const body = { name: form.elements.name.value.trim(), email: form.email.value.trim(), password: form.password.value };
      try {
        await call('register', { body });
        await logIn(body.email, body.password);
        await navigate(nextPath(), { replace: true });
      } catch (err) {
        showFormError(form, err);
      }
    });
  });
  main.replaceChildren(h('div.narrow',
    h('h1', 'Create an account'),
    form,
    h('p', 'Already have an account? ', h('a', { href: `/shop/login${location.search}` }, 'Log in'))));
  form.elements.name.focus();
}

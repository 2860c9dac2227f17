//! The account page: change name, email or password (an email or password
//! change asks for the current password, which the API checks), and delete
//! the account after a second confirming click.

import { authed, call, changed, requireLogin, session, toLogin } from '../shop.js';
import { h, field, busy, showFormError, clearFormError, notice, date, errorBox } from '../dom.js';
import { navigate } from '../router.js';

export default async function account(main) {
  document.title = 'Account — Shop';
  const s = requireLogin();
  if (!s) return;
  let user = await authed('getUser', { params: { id: s.user_id } });

  const saved = h('div', { 'aria-live': 'polite' });
  const form = h('form.account', { novalidate: true },
    field('Name', 'name', { type: 'text', autocomplete: 'name', value: user.name, required: true }),
    field('Email', 'email', { type: 'email', autocomplete: 'email', value: user.email, required: true }),
    field('New password', 'password', { type: 'password', autocomplete: 'new-password' }, 'Leave empty to keep your password. At least 8 characters.'),
    field('Current password', 'current_password', { type: 'password', autocomplete: 'current-password' }, 'Needed to change your email or password.'),
    h('button.primary', { type: 'submit', 'data-busy-label': 'Saving…' }, 'Save changes'),
    saved);
  const f = form.elements;
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const button = form.querySelector('button[type=submit]');
    busy(button, async () => {
      clearFormError(form);
      saved.replaceChildren();
      const body = {};
      if (f.name.value.trim() !== user.name) body.name = f.name.value.trim();
      if (f.email.value.trim() !== user.email) body.email = f.email.value.trim();
      if (f.password.value) body.password = f.password.value;
      if (!Object.keys(body).length) {
        saved.replaceChildren(notice('Nothing to change.'));
        return;
      }
      if ((body.email || body.password) && f.current_password.value) body.current_password = f.current_password.value;
      try {
        user = await authed('updateUser', { params: { id: s.user_id }, body });
        // A new email or password ends the account's sessions, this one
        // too: log in again with what the shopper just typed.
        const password = body.password || body.current_password;
        if ((body.email || body.password) && password) {
          try {
            session.save(await call('login', { body: { email: user.email, password } }));
          } catch {
            session.clear();
            changed();
            return toLogin('Your email or password was changed. Please log in again.');
          }
        }
        f.password.value = '';
        f.current_password.value = '';
        f.name.value = user.name;
        f.email.value = user.email;
        saved.replaceChildren(notice('Your changes were saved.', 'success'));
        changed();
      } catch (err) {
        if (err.status === 401) return;
        // A wrong or missing current password belongs beside that field,
        // headlined as such: here invalid_credentials is not a failed login
        // (the shopper stays logged in), so login's headline would mislead.
        if (err.status === 403 && (err.code === 'current_password_required' || err.code === 'invalid_credentials')) {
          const msg = err.code === 'invalid_credentials' ? 'The current password is not right.' : 'Enter your current password to change your email or password.';
          f.current_password.value = '';
          return showFormError(form, { problem: { ...err.problem, detail: '' }, headline: msg, fieldErrors: { current_password: msg } });
        }
        showFormError(form, err);
      }
    });
  });

  const del = h('div.danger-zone', h('h2', 'Delete account'),
    h('p', 'This deletes your account, your cart and your login. Orders already placed are kept by the shop.'));
  const delProblem = h('div', { 'aria-live': 'assertive' });
  const delButton = h('button.danger', { type: 'button', id: 'delete-account' }, 'Delete my account…');
  delButton.addEventListener('click', () => {
    const confirmButton = h('button.danger', { type: 'button', id: 'confirm-delete', 'data-busy-label': 'Deleting…' }, 'Yes, delete my account');
    const cancel = h('button', { type: 'button', onclick: () => box.replaceWith(delButton) }, 'Cancel');
    const box = h('div.confirm', { role: 'group', 'aria-label': 'Confirm deletion' }, h('p', h('strong', 'Are you sure? This cannot be undone.')), confirmButton, ' ', cancel);
    confirmButton.addEventListener('click', () => busy(confirmButton, async () => {
      try {
        await authed('deleteUser', { params: { id: s.user_id } });
        session.clear();
        session.setNotice('Your account was deleted.');
        changed();
        await navigate('/shop/login', { replace: true });
      } catch (err) {
        if (err.status !== 401) delProblem.replaceChildren(errorBox(err));
      }
    }));
    delButton.replaceWith(box);
    confirmButton.focus();
  });
  del.append(delProblem, delButton);

  main.replaceChildren(h('div.narrow',
    h('h1', 'Your account'),
    h('p.muted', `Member since ${date(user.created_at)}`),
    form,
    del));
}


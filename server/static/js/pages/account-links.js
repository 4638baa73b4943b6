// Pages behind the links the accounts service mails: forgot password, reset password, verify
// email. Mailed links are /#/reset-password?token=… and /#/verify-email?token=…: the token
// rides in the fragment, which browsers never send to a server (nor to a Referer).
import { api, ApiError } from '../api.js';
import { h } from '../dom.js';
import { pageTitle, message } from '../ui.js';

function tokenFromHash() {
  const params = new URLSearchParams(location.hash.replace(/^#/, ''));
  return params.get('token') || '';
}

function errorText(err) {
  if (!(err instanceof ApiError)) return `Network error: ${err.message}`;
  if (err.status === 429) return 'Too many attempts. Wait a minute and try again.';
  return err.message;
}

function passwordField(id, label) {
  const input = h('input', { class: 'input', id, name: id, type: 'password', autocomplete: 'new-password', required: true, minlength: '8' });
  return { input, el: h('div', { class: 'field' }, h('label', { for: id }, label), input) };
}

export function renderForgot({ main, query }) {
  const input = h('input', { class: 'input', id: 'email', name: 'email', type: 'email', autocomplete: 'username', required: true });
  const status = h('p', { role: 'status', id: 'forgot-status' });
  const submit = h('button', { type: 'submit', class: 'button button-primary' }, 'Send reset link');
  const form = h('form', { class: 'form', id: 'forgot-form', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'email' }, 'Email'), input), status, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    status.textContent = '';
    try {
      await api('POST', '/auth/password-reset/request', { body: { email: input.value.trim() }, auth: 'none' });
      // The service answers alike whether or not the address has an account.
      status.textContent = 'If an account uses this address, a reset link is on its way.';
    } catch (err) {
      status.textContent = errorText(err);
    } finally {
      submit.disabled = false;
    }
  });
  main.append(h('div', { class: 'auth-page' }, pageTitle('Forgot your password?'), form,
    h('p', {}, h('a', { href: '/login' }, 'Back to sign in'))));
  input.value = query.get('email') || '';
  input.focus();
}

export function renderReset({ main, navigate }) {
  const token = tokenFromHash();
  if (!token) {
    main.append(h('div', { class: 'auth-page' }, pageTitle('Reset password'),
      message('This reset link is incomplete. Ask for a new one.', 'warning'),
      h('p', {}, h('a', { href: '/forgot-password' }, 'Send a new link'))));
    return;
  }
  const pw = passwordField('password', 'New password');
  const again = passwordField('password-again', 'New password, again');
  const error = h('p', { class: 'form-error', role: 'alert', id: 'reset-error' });
  const submit = h('button', { type: 'submit', class: 'button button-primary' }, 'Set password');
  const form = h('form', { class: 'form', id: 'reset-form', novalidate: true }, pw.el, again.el, error, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    if (pw.input.value !== again.input.value) {
      error.textContent = 'The two passwords differ.';
      return;
    }
    submit.disabled = true;
    try {
      await api('POST', '/auth/password-reset', { body: { token, password: pw.input.value }, auth: 'none' });
      history.replaceState(null, '', '/reset-password'); // the token is spent: drop it from the URL
      navigate('/login?reason=password-reset', { replace: true });
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      submit.disabled = false;
    }
  });
  main.append(h('div', { class: 'auth-page' }, pageTitle('Choose a new password'), form));
  pw.input.focus();
}

export async function renderVerify({ main }) {
  const token = tokenFromHash();
  const box = h('div', { class: 'auth-page' }, pageTitle('Verify your email'));
  main.append(box);
  if (!token) {
    box.append(message('This verification link is incomplete.', 'warning'));
    return;
  }
  try {
    await api('POST', '/auth/verify-email', { body: { token }, auth: 'none' });
    history.replaceState(null, '', '/verify-email');
    box.append(message('Your email address is verified. Thank you.', 'success'),
      h('p', {}, h('a', { href: '/' }, 'Start watching')));
  } catch (err) {
    box.append(message(errorText(err), 'warning'));
  }
}

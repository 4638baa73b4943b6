// Sign in and register.
import { login, register, ApiError } from '../api.js';
import { h } from '../dom.js';
import { pageTitle, message, flash } from '../ui.js';

const REASONS = {
  revoked: 'Your session was signed out (from another device or by an administrator). Please sign in again.',
  expired: 'Your session has expired. Please sign in again.',
  'password-reset': 'Your password is changed and every device was signed out. Sign in with the new one.',
};

function field(label, attrs) {
  const input = h('input', { class: 'input', ...attrs });
  return { input, el: h('div', { class: 'field' }, h('label', { for: attrs.id }, label), input) };
}

/** Only same-app paths after sign-in, never another origin (an open redirect). */
function safeNext(query) {
  const next = query.get('next') || '/';
  return next.startsWith('/') && !next.startsWith('//') && !next.startsWith('/login') ? next : '/';
}

function errorText(err) {
  if (!(err instanceof ApiError)) return `Network error: ${err.message}`;
  if (err.code === 'invalid_credentials') return 'Wrong email or password.';
  if (err.status === 429) return 'Too many attempts. Wait a minute and try again.';
  return err.message;
}

export function renderLogin({ main, query, navigate }) {
  const reason = query.get('reason');
  const email = field('Email', { id: 'email', name: 'email', type: 'email', autocomplete: 'username', required: true });
  const password = field('Password', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { class: 'form-error', role: 'alert', id: 'login-error' });
  const submit = h('button', { type: 'submit', class: 'button button-primary' }, 'Sign in');
  const form = h('form', { class: 'form', id: 'login-form', novalidate: true }, email.el, password.el, error, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    submit.disabled = true;
    try {
      await login(email.input.value.trim(), password.input.value);
      flash('Welcome back.');
      navigate(safeNext(query), { replace: true });
    } catch (err) {
      error.textContent = errorText(err);
      password.input.select();
    } finally {
      submit.disabled = false;
    }
  });
  main.append(h('div', { class: 'auth-page' },
    pageTitle('Sign in'),
    REASONS[reason] ? message(REASONS[reason], 'warning') : null,
    query.get('registered') ? message('Your account is ready. Sign in to start watching.', 'success') : null,
    form,
    h('p', {}, h('a', { href: '/forgot-password', id: 'forgot-link' }, 'Forgot your password?')),
    h('p', {}, 'New here? ', h('a', { href: '/register' }, 'Create an account'))));
  email.input.value = query.get('email') || '';
  (email.input.value ? password.input : email.input).focus();
}

export function renderRegister({ main, navigate }) {
  const name = field('Display name (optional)', { id: 'display_name', name: 'display_name', type: 'text', autocomplete: 'nickname', maxlength: '100' });
  const email = field('Email', { id: 'email', name: 'email', type: 'email', autocomplete: 'email', required: true });
  const password = field('Password', { id: 'password', name: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: '8', 'aria-describedby': 'password-hint' });
  const hint = h('p', { class: 'field-hint', id: 'password-hint' }, 'At least 8 characters; a phrase of several words is best.');
  const error = h('p', { class: 'form-error', role: 'alert', id: 'register-error' });
  const submit = h('button', { type: 'submit', class: 'button button-primary' }, 'Create account');
  const form = h('form', { class: 'form', id: 'register-form', novalidate: true }, name.el, email.el, password.el, hint, error, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    submit.disabled = true;
    try {
      await register(email.input.value.trim(), password.input.value, name.input.value.trim());
      // Sign-in is its own step: the accounts service may ask to verify the email first.
      navigate(`/login?registered=1&email=${encodeURIComponent(email.input.value.trim())}`, { replace: true });
    } catch (err) {
      error.textContent = err.code === 'email_taken' ? 'An account with this email already exists.' : errorText(err);
    } finally {
      submit.disabled = false;
    }
  });
  main.append(h('div', { class: 'auth-page' },
    pageTitle('Create your account'),
    form,
    h('p', {}, 'Already have one? ', h('a', { href: '/login' }, 'Sign in'))));
  (name.input).focus();
}

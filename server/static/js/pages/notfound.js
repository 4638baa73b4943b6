import { h } from '../dom.js';
import { pageTitle, message } from '../ui.js';

export function render({ main }) {
  main.append(pageTitle('Page not found'), message('There is nothing at this address.'),
    h('p', {}, h('a', { href: '/' }, 'Back to home')));
}

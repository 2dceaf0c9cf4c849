// kehai's space page: what the server put in the page (#page-data) and the small helpers every
// module of the page uses. All text goes in through textContent, so names and emoji from other
// people can never become markup.

export const pageData = JSON.parse(document.getElementById('page-data').textContent);
export const { space, me: myId, csrf, connect: connectToken, lang } = pageData;
const strings = pageData.strings || {};

/** Fills {placeholders}. A function replacer, so "$" in names is literal. */
function fill(template, vars) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** A UI string of the page with its {placeholders} filled in. */
export function t(key, vars = {}) {
  return fill(strings[key] ?? key, vars);
}

/** Our own words for an API error code, if we have them (the server's are in English). */
export function errorWords(code) {
  return (code && strings[`error_${code}`]) || null;
}

/** A string of one provider's card (`connect`, `toggle`, …) with its {placeholders} filled in. */
export function providerWords(provider, key, vars = {}) {
  const table = (pageData.integrations || []).find((p) => p.id === provider)?.strings || {};
  return fill(table[key] ?? key, vars);
}

/** Creates an element with an optional class and text. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

export const $ = (id) => document.getElementById(id);

const announcer = $('announcer');

/** Speaks a short message politely. A fresh node each time, so a repeated message is heard again. */
export function announce(message) {
  if (!message) return;
  const line = el('p', null, message);
  announcer.append(line);
  while (announcer.childElementCount > 3) announcer.firstElementChild.remove();
  setTimeout(() => line.remove(), 15000);
}

/**
 * Keeps Tab and Shift+Tab inside an open modal dialog: the browser's own modal lets the focus
 * leave for its address bar, and from there onto nothing a keyboard user can see.
 */
export function trapFocus(modal) {
  modal.addEventListener('keydown', (event) => {
    if (event.key !== 'Tab') return;
    const focusable = [...modal.querySelectorAll('button, input, select, textarea, a[href], [tabindex]:not([tabindex="-1"])')]
      .filter((e) => !e.disabled && !e.hidden && e.offsetParent !== null);
    if (focusable.length === 0) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  });
}

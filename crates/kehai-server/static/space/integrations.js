// kehai's space page: one card per presence provider in the profile's Status section. Each card
// asks the server for its state in this space and draws the matching actions — Connect (a popup
// to the provider), Enable in this space, the ON/OFF toggle, Disconnect (with a confirmation) —
// in the provider's own words (#page-data's integrations). The popup's last page tells us it
// finished (postMessage, our origin only). Knows no provider: everything comes from the page.

import { api } from './api.js';
import { $, announce, connectToken, el, lang, providerWords, space, t, trapFocus } from './page.js';

// The cards the page has for providers this server offers (none for guests).
const configured = [...document.querySelectorAll('.integration-card[data-provider]')]
  .filter((node) => node.dataset.state !== 'not_configured')
  .map((node) => node.dataset.provider);
const path = (provider) => `/api/spaces/${encodeURIComponent(space)}/integrations/${encodeURIComponent(provider)}`;
const card = (provider) => $(`integration-${provider}`);

let showError = () => {};

function button(id, text, onClick, primary) {
  const b = el('button', primary ? 'primary' : null, text);
  b.type = 'button';
  b.id = id;
  b.addEventListener('click', onClick);
  return b;
}

function formatSince(ms) {
  try {
    return new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(ms));
  } catch {
    return new Date(ms).toLocaleString();
  }
}

/** The card's state in words: the generic ones, or the provider's own. */
function stateText(provider, status) {
  switch (status.state) {
    case 'not_configured':
      return providerWords(provider, 'not_configured');
    case 'not_connected':
      return t('integration_not_connected');
    case 'available':
      return providerWords(provider, 'available');
    case 'connected':
      return t('integration_connected', { since: status.connected_since ? formatSince(status.connected_since) : '' });
    case 'paused':
      return t('integration_paused');
    case 'needs_reconnect':
      return providerWords(provider, 'needs_reconnect');
    case 'error':
      return t('integration_error', { error: status.last_error || '' });
    default:
      return status.state;
  }
}

function render(provider, status) {
  const node = card(provider);
  if (!node) return;
  node.dataset.state = status.state;
  node.querySelector('.integration-state').textContent = stateText(provider, status);
  // What the member should know about the connection, in the provider's words.
  let notes = node.querySelector('.integration-notes');
  if (!notes) {
    notes = el('ul', 'integration-notes');
    node.querySelector('.integration-state').after(notes);
  }
  notes.replaceChildren(...(status.notes || []).map((code) => el('li', null, providerWords(provider, `note_${code}`))));
  const actions = node.querySelector('.integration-actions');
  actions.replaceChildren();
  if (['not_connected', 'needs_reconnect', 'error'].includes(status.state)) {
    actions.append(button(`${provider}-connect`, providerWords(provider, 'connect'), () => openPopup(provider), true));
  }
  if (status.state === 'available') {
    actions.append(button(`${provider}-enable`, t('integration_enable_here'), () => set(provider, true), true));
  }
  if (status.state === 'connected' || status.state === 'paused') {
    const label = el('label', 'switch');
    const toggle = el('input');
    toggle.type = 'checkbox';
    toggle.setAttribute('role', 'switch');
    toggle.id = `${provider}-toggle`;
    toggle.checked = status.state === 'connected';
    toggle.addEventListener('change', () => set(provider, toggle.checked));
    label.append(toggle, el('span', null, providerWords(provider, 'toggle')));
    actions.append(label);
  }
  if (status.used_here) {
    actions.append(button(`${provider}-disconnect`, providerWords(provider, 'disconnect'), () => confirmDisconnect(provider)));
  }
}

async function refresh(provider) {
  try {
    render(provider, await api('GET', path(provider)));
  } catch (error) {
    const node = card(provider);
    if (node) node.querySelector('.integration-state').textContent = error.message;
  }
}

/** Every configured provider's card, asked again (the profile dialog opens). */
export function refreshAll() {
  return Promise.all(configured.map(refresh));
}

async function set(provider, enabled) {
  try {
    render(provider, await api('PUT', path(provider), { enabled }));
  } catch (error) {
    showError(error.message);
    refresh(provider);
  }
}

function openPopup(provider) {
  // The session's connect token: the server starts a sign-in only for its own page's button.
  const url = `/integrations/${encodeURIComponent(provider)}/connect?space=${encodeURIComponent(space)}` +
    `&connect=${encodeURIComponent(connectToken)}`;
  const popup = window.open(url, `kehai-${provider}`, 'popup,width=520,height=700');
  if (!popup) showError(t('integration_popup_blocked'));
}

// One confirmation dialog for every provider, in the provider's words (members only).
const disconnectDialog = $('disconnect-dialog');
if (disconnectDialog) trapFocus(disconnectDialog);

function confirmDisconnect(provider) {
  disconnectDialog.dataset.provider = provider;
  $('disconnect-title').textContent = providerWords(provider, 'disconnect_title');
  $('disconnect-text').textContent = providerWords(provider, 'disconnect_text');
  disconnectDialog.returnValue = '';
  disconnectDialog.showModal();
}

disconnectDialog?.addEventListener('close', async () => {
  const provider = disconnectDialog.dataset.provider;
  if (disconnectDialog.returnValue !== 'disconnect' || !provider) return;
  try {
    render(provider, await api('DELETE', path(provider)));
    announce(providerWords(provider, 'now_disconnected'));
  } catch (error) {
    showError(error.message);
  }
});

/** Wires the cards to the profile dialog: where errors show, and how the notices open it. */
export function initIntegrations({ onError, openStatus }) {
  showError = onError;
  // A once-only notice that a connection needs a new sign-in opens the Status section.
  for (const open of document.querySelectorAll('.notice[data-provider] .notice-open')) {
    open.addEventListener('click', openStatus);
  }
}

// The popup finished: show the new state without a reload.
window.addEventListener('message', (event) => {
  if (event.origin !== window.location.origin || !event.data || event.data.type !== 'kehai:connect') return;
  const { provider, outcome } = event.data;
  if (!configured.includes(provider)) return;
  refresh(provider).then(() => {
    if (outcome === 'connected') announce(providerWords(provider, 'now_connected'));
  });
});

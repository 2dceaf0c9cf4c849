// kehai's space page: the profile dialog — the display name, the own emoji (a grid, or any one
// emoji typed), and the Status section with the integration cards (integrations.js).

import { api } from './api.js';
import { applyAvatar, mine, ownFace, sortList } from './avatars.js';
import { $, announce, space, t, trapFocus } from './page.js';

const dialog = $('profile-dialog');
trapFocus(dialog);
const form = $('profile-form');
const nameInput = $('display-name');
const grid = $('emoji-grid');
const otherInput = $('emoji-other');
const currentEmoji = $('emoji-current');
const errorBox = $('profile-error');
const saveButton = $('profile-save');

let gridChoice = null; // the last emoji picked in the grid (null = none)
let pendingEmoji = null; // what Save would store
let saving = false;
let onOpen = () => {};

// Keyboards differ on U+FE0F (emoji presentation); ignore it when matching a grid button.
const bare = (s) => (s || '').replace(/\uFE0F/g, '');
const gridButtons = () => [...grid.querySelectorAll('.emoji-choice')];
const gridButtonFor = (emoji) => gridButtons().find((b) => bare(b.dataset.emoji) === bare(emoji)) || null;

function setPending(emoji, pressed) {
  pendingEmoji = emoji || null;
  for (const b of gridButtons()) b.setAttribute('aria-pressed', String(b === pressed));
  currentEmoji.textContent = pendingEmoji || t('emoji_none');
}

/** Shows (or with nothing, hides) a problem in the dialog. */
export function showError(message) {
  errorBox.textContent = message || '';
  errorBox.hidden = !message;
}

/** Calls `refresh` whenever the dialog opens (the Status section's cards). */
export function whenOpened(refresh) {
  onOpen = refresh;
}

export function openProfileDialog() {
  const own = mine();
  if (!own || dialog.open) return;
  nameInput.value = own.display_name;
  const emoji = own.own_emoji || null;
  const button = gridButtonFor(emoji);
  // An own emoji that isn't in the grid was typed; show it in the "other" field.
  gridChoice = button ? emoji : null;
  otherInput.value = button ? '' : emoji;
  setPending(emoji, button);
  showError(null);
  onOpen();
  dialog.showModal();
  nameInput.focus();
}

/** Opens the dialog at its Status section. */
export function openStatus() {
  openProfileDialog();
  $('status-section').scrollIntoView({ block: 'start' });
}

grid.addEventListener('click', (event) => {
  const button = event.target.closest('.emoji-choice');
  if (!button) return;
  gridChoice = button.dataset.emoji || null;
  otherInput.value = '';
  setPending(gridChoice, button);
});

otherInput.addEventListener('input', () => {
  const typed = otherInput.value.trim();
  // Typing overrides the grid; clearing the field falls back to the grid's choice.
  if (typed) setPending(typed, null);
  else setPending(gridChoice, gridButtonFor(gridChoice));
});

$('profile-cancel').addEventListener('click', () => dialog.close());

// Covers Cancel, Esc (native) and a successful save.
dialog.addEventListener('close', () => {
  const target = ownFace();
  if (target) target.focus();
});

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  if (saving) return;
  const own = mine();
  if (!own) return dialog.close();

  const name = nameInput.value.trim();
  if (!name) {
    showError(t('name_required'));
    nameInput.focus();
    return;
  }
  const changes = {};
  if (name !== own.display_name) changes.display_name = name;
  if (pendingEmoji !== (own.own_emoji || null)) changes.emoji = pendingEmoji;
  if (Object.keys(changes).length === 0) return dialog.close();

  // aria-disabled rather than disabled: a disabled button would drop keyboard focus.
  saving = true;
  saveButton.setAttribute('aria-disabled', 'true');
  showError(null);
  try {
    const updated = await api('PUT', `/api/spaces/${encodeURIComponent(space)}/me`, changes);
    // The avatar event will follow, but show the result now.
    if (updated && updated.person_id) {
      applyAvatar(updated, { quiet: true });
      sortList();
    }
    dialog.close();
    announce(t('saved'));
  } catch (error) {
    showError(error.message);
  } finally {
    saving = false;
    saveButton.removeAttribute('aria-disabled');
  }
});

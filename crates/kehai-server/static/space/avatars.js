// kehai's space page: the list of avatars, in name order, each with its initials, its emoji badge
// and a label that says who, what and whether they are here. Updated in place, so focus on a
// button survives updates; changes of other people are announced to screen readers.

import { $, announce, el, lang, myId, t } from './page.js';

const list = $('avatars');
const avatars = new Map(); // person_id → Avatar JSON
const items = new Map(); // person_id → <li>

let collator;
try {
  collator = new Intl.Collator(lang, { sensitivity: 'base', numeric: true });
} catch {
  collator = new Intl.Collator(undefined, { sensitivity: 'base', numeric: true });
}

function compareAvatars(a, b) {
  // Tie-break on id so people with the same name keep a stable order.
  return collator.compare(a.display_name, b.display_name) || (a.person_id < b.person_id ? -1 : a.person_id > b.person_id ? 1 : 0);
}

const segmenter = 'Segmenter' in Intl ? new Intl.Segmenter(undefined, { granularity: 'grapheme' }) : null;
const graphemes = (s) => (segmenter ? Array.from(segmenter.segment(s), (part) => part.segment) : Array.from(s));
const CJK = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]/u;

/** "Alice Smith" → "AS", "alice" → "A", "山田 花子" → "山". */
function initials(name) {
  const words = name.trim().split(/\s+/u).filter(Boolean);
  if (words.length === 0) return '?';
  const first = graphemes(words[0])[0];
  if (words.length === 1 || CJK.test(first)) return first.toUpperCase();
  return (first + graphemes(words[words.length - 1])[0]).toUpperCase();
}

/** A stable hue (0–359) from the person id: FNV-1a, so the same person keeps their colour everywhere. */
function hueOf(id) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    hash ^= id.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % 360;
}

/** What the badge means: the presence label (named by its provider) when one is shown, else the own emoji. */
function emojiDescription(a) {
  if (a.presence) return a.presence.label;
  return a.emoji ? t('status_emoji', { emoji: a.emoji }) : null;
}

/** The face's accessible name and tooltip, e.g. "Alice — Microsoft Teams: 取り込み中 / Busy — not here". */
function faceLabel(a) {
  let name = a.display_name;
  if (a.person_id === myId) name += ' ' + t('you');
  else if (a.kind === 'guest') name += ' ' + t('guest');
  const parts = [name];
  const status = emojiDescription(a);
  if (status) parts.push(status);
  if (!a.here) parts.push(t('not_here'));
  return parts.join(' — ');
}

/** Builds the parts of an avatar that never change; renderAvatar fills in the rest. */
function createAvatarItem(id) {
  const li = el('li', 'avatar');
  li.dataset.personId = id;

  const figure = el('div', 'avatar-figure');
  const face = el('button', 'avatar-face');
  face.type = 'button';
  const hue = hueOf(id);
  face.style.setProperty('--hue', String(hue));
  // Yellows, greens and cyans are light at the same HSL lightness; darken them so white
  // initials keep at least 3:1 contrast.
  face.style.setProperty('--lightness', hue >= 25 && hue <= 205 ? '34%' : '45%');
  const initialsSpan = el('span', 'initials');
  initialsSpan.setAttribute('aria-hidden', 'true');
  face.append(initialsSpan);
  figure.append(face);

  if (id === myId) {
    // Clicking your own face reveals this pencil, which opens the profile dialog.
    const edit = el('button', 'edit-profile', '✏️');
    edit.type = 'button';
    edit.id = 'edit-profile';
    edit.hidden = true;
    edit.setAttribute('aria-label', t('edit_profile'));
    edit.title = t('edit_profile');
    face.setAttribute('aria-expanded', 'false');
    face.setAttribute('aria-controls', edit.id);
    figure.append(edit);
  }

  // The face button's label already says all of this; hide the visible copies from screen
  // readers so nothing is read twice.
  const name = el('span', 'name');
  name.setAttribute('aria-hidden', 'true');
  const away = el('span', 'away', t('away'));
  away.setAttribute('aria-hidden', 'true');
  li.append(figure, name, away);
  return li;
}

/** Brings an avatar's <li> up to date in place (so focus on its buttons survives updates). */
function renderAvatar(li, a) {
  li.classList.toggle('is-me', a.person_id === myId);
  li.classList.toggle('not-here', !a.here);
  li.classList.toggle('is-guest', a.kind === 'guest');

  const face = li.querySelector('.avatar-face');
  face.querySelector('.initials').textContent = initials(a.display_name);

  let badge = face.querySelector('.badge');
  if (a.emoji) {
    if (!badge) {
      badge = el('span', 'badge');
      badge.setAttribute('role', 'img');
      face.append(badge);
    }
    badge.textContent = a.emoji;
    badge.setAttribute('aria-label', emojiDescription(a));
  } else if (badge) {
    badge.remove();
  }

  const label = faceLabel(a);
  face.setAttribute('aria-label', label);
  face.title = label;
  li.querySelector('.name').textContent = a.display_name;
  li.querySelector('.away').hidden = a.here;
}

/** The topbar shows the viewer's name; keep it in step after a rename. */
function renderWhoami(a) {
  const whoami = document.querySelector('.whoami');
  if (whoami && whoami.textContent !== a.display_name) whoami.textContent = a.display_name;
}

/** One sentence (or none) describing what changed for another person. */
function describeChange(prev, next) {
  const name = next.display_name;
  const sentences = [];
  if (!prev) {
    if (next.here) sentences.push(t('joined', { name }));
  } else {
    if (!prev.here && next.here) sentences.push(t('joined', { name }));
    if (prev.here && !next.here) sentences.push(t('away_now', { name }));
    const prevLabel = prev.presence ? prev.presence.label : null;
    const nextLabel = next.presence ? next.presence.label : null;
    if (nextLabel && nextLabel !== prevLabel) {
      sentences.push(t('presence_changed', { name, label: nextLabel }));
    } else if ((next.emoji || null) !== (prev.emoji || null)) {
      sentences.push(next.emoji ? t('emoji_changed', { name, emoji: next.emoji }) : t('emoji_cleared', { name }));
    }
  }
  return sentences.join(' ');
}

/** The viewer's own avatar, as last received. */
export function mine() {
  return avatars.get(myId);
}

/** Where the focus goes back to when the profile dialog closes: the pencil if shown, else the face. */
export function ownFace() {
  const edit = $('edit-profile');
  return edit && !edit.hidden ? edit : items.get(myId)?.querySelector('.avatar-face');
}

/** Inserts or updates one person. Call sortList() afterwards. */
export function applyAvatar(a, { quiet = false } = {}) {
  const prev = avatars.get(a.person_id);
  avatars.set(a.person_id, a);
  let li = items.get(a.person_id);
  if (!li) {
    li = createAvatarItem(a.person_id);
    items.set(a.person_id, li);
  }
  renderAvatar(li, a);
  if (a.person_id === myId) renderWhoami(a);
  else if (!quiet) announce(describeChange(prev, a));
}

export function removeAvatar(id, { quiet = false } = {}) {
  const a = avatars.get(id);
  if (!a) return;
  avatars.delete(id);
  items.get(id).remove();
  items.delete(id);
  if (!quiet && id !== myId) announce(t('left', { name: a.display_name }));
}

/** Puts the <li>s in name order, moving only those out of place. */
export function sortList() {
  const active = document.activeElement;
  [...avatars.values()].sort(compareAvatars).forEach((a, index) => {
    const li = items.get(a.person_id);
    if (list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
  });
  // Moving a node can drop focus in some browsers; put it back.
  if (active && active !== document.activeElement && list.contains(active)) active.focus({ preventScroll: true });
}

/** A snapshot replaces everything. It is applied quietly: on reconnect it would be a flood. */
export function replaceAll(all) {
  const ids = new Set(all.map((a) => a.person_id));
  for (const id of [...avatars.keys()]) if (!ids.has(id)) removeAvatar(id, { quiet: true });
  for (const a of all) applyAvatar(a, { quiet: true });
  sortList();
}

/** Clicking your own face shows the pencil; the pencil calls `onEditProfile`. */
export function onEditProfile(open) {
  list.addEventListener('click', (event) => {
    if (event.target.closest('.edit-profile')) {
      open();
      return;
    }
    const face = event.target.closest('.avatar-face');
    // Other people's faces only carry their tooltip; only your own does something.
    if (face && face.closest('.avatar').dataset.personId === myId) {
      const edit = $('edit-profile');
      edit.hidden = !edit.hidden;
      face.setAttribute('aria-expanded', String(!edit.hidden));
    }
  });
}

// kehai: the space page. Keeps the avatar list live over server-sent events and runs the
// profile dialog. Plain ES2020, no dependencies; all text goes in through textContent, so
// names and emoji from other people can never become markup.
(() => {
  'use strict';

  // ---- Page data and small helpers ---------------------------------------------------------

  const pageData = JSON.parse(document.getElementById('page-data').textContent);
  const { space, me: myId, csrf, lang } = pageData;
  const strings = pageData.strings || {};

  /** A UI string with its {placeholders} filled in. A function replacer, so "$" in names is literal. */
  function t(key, vars = {}) {
    const template = strings[key] ?? key;
    return template.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
  }

  /** Creates an element with an optional class and text. */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  const $ = (id) => document.getElementById(id);

  class ApiError extends Error {
    constructor(code, message, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
  }

  /**
   * Calls the JSON API with the CSRF header. Resolves to the parsed body (or null when empty);
   * rejects with an ApiError whose message is fit to show (the server's, or a generic one).
   */
  async function api(method, path, body) {
    const headers = { Accept: 'application/json', 'X-CSRF-Token': csrf };
    const init = { method, headers, credentials: 'same-origin' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError('network', t('network_error'), 0);
    }
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      // Not JSON (a proxy's error page, say): fall through to the generic message.
    }
    if (!response.ok) {
      const error = (json && json.error) || {};
      // Prefer our own words for the errors a person can cause; the server's are in English.
      const known = error.code && strings[`error_${error.code}`];
      throw new ApiError(error.code || `http_${response.status}`, known || error.message || t('request_failed'), response.status);
    }
    return json;
  }

  // ---- Screen-reader announcements ---------------------------------------------------------

  const announcer = $('announcer');

  /** Speaks a short message politely. A fresh node each time, so a repeated message is heard again. */
  function announce(message) {
    if (!message) return;
    const line = el('p', null, message);
    announcer.append(line);
    while (announcer.childElementCount > 3) announcer.firstElementChild.remove();
    setTimeout(() => line.remove(), 15000);
  }

  // ---- Avatars -----------------------------------------------------------------------------

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

  /** What the badge means: the presence label when an integration set it, else the own emoji. */
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

  /** Inserts or updates one person. Call sortList() afterwards. */
  function applyAvatar(a, { quiet = false } = {}) {
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

  function removeAvatar(id, { quiet = false } = {}) {
    const a = avatars.get(id);
    if (!a) return;
    avatars.delete(id);
    items.get(id).remove();
    items.delete(id);
    if (!quiet && id !== myId) announce(t('left', { name: a.display_name }));
  }

  /** Puts the <li>s in name order, moving only those out of place. */
  function sortList() {
    const active = document.activeElement;
    [...avatars.values()].sort(compareAvatars).forEach((a, index) => {
      const li = items.get(a.person_id);
      if (list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
    });
    // Moving a node can drop focus in some browsers; put it back.
    if (active && active !== document.activeElement && list.contains(active)) active.focus({ preventScroll: true });
  }

  /** A snapshot replaces everything. It is applied quietly: on reconnect it would be a flood. */
  function replaceAll(all) {
    const ids = new Set(all.map((a) => a.person_id));
    for (const id of [...avatars.keys()]) if (!ids.has(id)) removeAvatar(id, { quiet: true });
    for (const a of all) applyAvatar(a, { quiet: true });
    sortList();
  }

  list.addEventListener('click', (event) => {
    if (event.target.closest('.edit-profile')) {
      openProfileDialog();
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

  // ---- Profile dialog ----------------------------------------------------------------------

  /**
   * Keeps Tab and Shift+Tab inside an open modal dialog: the browser's own modal lets the focus
   * leave for its address bar, and from there onto nothing a keyboard user can see.
   */
  function trapFocus(modal) {
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

  // Keyboards differ on U+FE0F (emoji presentation); ignore it when matching a grid button.
  const bare = (s) => (s || '').replace(/\uFE0F/g, '');
  const gridButtons = () => [...grid.querySelectorAll('.emoji-choice')];
  const gridButtonFor = (emoji) => gridButtons().find((b) => bare(b.dataset.emoji) === bare(emoji)) || null;

  function setPending(emoji, pressed) {
    pendingEmoji = emoji || null;
    for (const b of gridButtons()) b.setAttribute('aria-pressed', String(b === pressed));
    currentEmoji.textContent = pendingEmoji || t('emoji_none');
  }

  function showError(message) {
    errorBox.textContent = message || '';
    errorBox.hidden = !message;
  }

  function openProfileDialog() {
    const mine = avatars.get(myId);
    if (!mine || dialog.open) return;
    nameInput.value = mine.display_name;
    const own = mine.own_emoji || null;
    const button = gridButtonFor(own);
    // An own emoji that isn't in the grid was typed; show it in the "other" field.
    gridChoice = button ? own : null;
    otherInput.value = button ? '' : own;
    setPending(own, button);
    showError(null);
    refreshTeams();
    dialog.showModal();
    nameInput.focus();
  }

  // The once-only notice that the Teams connection needs a new sign-in opens the Status section.
  const noticeOpen = $('teams-notice-open');
  if (noticeOpen) {
    noticeOpen.addEventListener('click', () => {
      openProfileDialog();
      $('status-section').scrollIntoView({ block: 'start' });
    });
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
    const edit = $('edit-profile');
    const target = edit && !edit.hidden ? edit : items.get(myId)?.querySelector('.avatar-face');
    if (target) target.focus();
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (saving) return;
    const mine = avatars.get(myId);
    if (!mine) return dialog.close();

    const name = nameInput.value.trim();
    if (!name) {
      showError(t('name_required'));
      nameInput.focus();
      return;
    }
    const changes = {};
    if (name !== mine.display_name) changes.display_name = name;
    if (pendingEmoji !== (mine.own_emoji || null)) changes.emoji = pendingEmoji;
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

  // ---- Microsoft Teams card (Status section) ------------------------------------------------
  // The card asks the server for its state in this space and draws the matching actions:
  // Connect (a popup to Microsoft), Enable in this space, the ON/OFF toggle, Disconnect (with a
  // confirmation). The popup's last page tells us it finished (postMessage, our origin only).

  const teamsCard = $('teams-card');
  const teamsPath = `/api/spaces/${encodeURIComponent(space)}/integrations/msteams`;

  function teamsButton(id, text, onClick, primary) {
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

  function renderTeams(status) {
    if (!teamsCard) return;
    teamsCard.dataset.state = status.state;
    const stateText = $('teams-state');
    const actions = $('teams-actions');
    actions.replaceChildren();
    const texts = {
      not_configured: t('teams_not_configured'),
      not_connected: t('teams_not_connected'),
      available: t('teams_available'),
      connected: t('teams_connected', { since: status.connected_since ? formatSince(status.connected_since) : '' }),
      paused: t('teams_paused'),
      needs_reconnect: t('teams_needs_reconnect'),
      error: t('teams_error', { error: status.last_error || '' }),
    };
    stateText.textContent = texts[status.state] || status.state;
    if (['not_connected', 'needs_reconnect', 'error'].includes(status.state)) {
      actions.append(teamsButton('teams-connect', t('teams_connect'), openTeamsPopup, true));
    }
    if (status.state === 'available') {
      actions.append(teamsButton('teams-enable', t('teams_enable_here'), () => setTeams(true), true));
    }
    if (status.state === 'connected' || status.state === 'paused') {
      const label = el('label', 'switch');
      const toggle = el('input');
      toggle.type = 'checkbox';
      toggle.setAttribute('role', 'switch');
      toggle.id = 'teams-toggle';
      toggle.checked = status.state === 'connected';
      toggle.addEventListener('change', () => setTeams(toggle.checked));
      label.append(toggle, el('span', null, t('teams_toggle')));
      actions.append(label);
    }
    if (status.used_here) {
      actions.append(teamsButton('teams-disconnect', t('teams_disconnect'), confirmDisconnect));
    }
  }

  async function refreshTeams() {
    if (!teamsCard) return;
    try {
      renderTeams(await api('GET', teamsPath));
    } catch (error) {
      $('teams-state').textContent = error.message;
    }
  }

  async function setTeams(enabled) {
    try {
      renderTeams(await api('PUT', teamsPath, { enabled }));
    } catch (error) {
      showError(error.message);
      refreshTeams();
    }
  }

  function openTeamsPopup() {
    const url = `/integrations/msteams/connect?space=${encodeURIComponent(space)}`;
    const popup = window.open(url, 'kehai-msteams', 'popup,width=520,height=700');
    if (!popup) showError(t('teams_popup_blocked'));
  }

  const disconnectDialog = $('teams-disconnect-dialog');
  if (disconnectDialog) trapFocus(disconnectDialog);
  function confirmDisconnect() {
    if (!disconnectDialog) return;
    disconnectDialog.returnValue = '';
    disconnectDialog.showModal();
  }
  if (disconnectDialog) {
    disconnectDialog.addEventListener('close', async () => {
      if (disconnectDialog.returnValue !== 'disconnect') return;
      try {
        renderTeams(await api('DELETE', teamsPath));
        announce(t('teams_now_disconnected'));
      } catch (error) {
        showError(error.message);
      }
    });
  }

  // The popup finished: show the new state without a reload (S5).
  window.addEventListener('message', (event) => {
    if (event.origin !== window.location.origin || !event.data || event.data.type !== 'kehai:connect') return;
    if (event.data.provider !== 'msteams') return;
    refreshTeams().then(() => {
      if (event.data.outcome === 'connected') announce(t('teams_now_connected'));
    });
  });

  // ---- Live updates ------------------------------------------------------------------------

  const streamStatus = $('stream-status');

  function showStreamStatus(message) {
    streamStatus.textContent = message || '';
    streamStatus.hidden = !message;
  }

  /** Listens for one SSE event type whose data is JSON. */
  function onEvent(source, type, handler) {
    source.addEventListener(type, (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (error) {
        console.warn(`kehai: bad ${type} event`, error);
        return;
      }
      handler(data);
    });
  }

  let source = null;

  function connect() {
    // EventSource reconnects by itself and sends Last-Event-ID, so the server can resume.
    source = new EventSource(`/s/${encodeURIComponent(space)}/events`);
    const es = source;
    es.addEventListener('open', () => showStreamStatus(null));
    es.addEventListener('error', () => {
      // CLOSED means the browser gave up (e.g. the server answered with an error status).
      showStreamStatus(es.readyState === EventSource.CLOSED ? t('disconnected') : t('reconnecting'));
    });
    onEvent(es, 'snapshot', (data) => replaceAll(data.avatars || []));
    onEvent(es, 'avatar', (a) => {
      applyAvatar(a);
      sortList();
    });
    onEvent(es, 'left', (data) => removeAvatar(data.person_id));
  }

  // Close the stream when leaving (no "reconnecting" flash, and the page stays eligible for the
  // back/forward cache); reopen if the page comes back from that cache.
  window.addEventListener('pagehide', () => {
    if (source) source.close();
  });
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) connect();
  });

  connect();
})();

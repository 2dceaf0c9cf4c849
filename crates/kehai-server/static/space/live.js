// kehai's space page: the space's event stream (server-sent events). A snapshot replaces every
// avatar, an avatar event updates one, a departure removes one; the browser reconnects by itself
// and sends Last-Event-ID, so the server can resume.

import { $, space, t } from './page.js';

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

/** Follows the space's events until the page is left (and again if it comes back from the cache). */
export function follow({ snapshot, avatar, left }) {
  let source = null;
  const connect = () => {
    source = new EventSource(`/s/${encodeURIComponent(space)}/events`);
    const es = source;
    es.addEventListener('open', () => showStreamStatus(null));
    es.addEventListener('error', () => {
      // CLOSED means the browser gave up (e.g. the server answered with an error status).
      showStreamStatus(es.readyState === EventSource.CLOSED ? t('disconnected') : t('reconnecting'));
    });
    onEvent(es, 'snapshot', (data) => snapshot(data.avatars || []));
    onEvent(es, 'avatar', avatar);
    onEvent(es, 'left', (data) => left(data.person_id));
  };
  // Close the stream when leaving (no "reconnecting" flash, and the page stays eligible for the
  // back/forward cache); reopen if the page comes back from that cache.
  window.addEventListener('pagehide', () => {
    if (source) source.close();
  });
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) connect();
  });
  connect();
}

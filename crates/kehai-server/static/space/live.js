// kehai's space page: the space's event stream (server-sent events). A snapshot replaces every
// avatar, an avatar event updates one, a departure removes one; the browser reconnects by itself
// and sends Last-Event-ID, so the server can resume. When the server refused the stream (it holds
// as many as it can), the page tries again later, less and less often (and goes to the login when
// the session is over); when the server closed it because this session opened too many other
// pages, it stops and says so.

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
  let retryIn = 5000;
  let retry = null;
  const connect = () => {
    source = new EventSource(`/s/${encodeURIComponent(space)}/events`);
    const es = source;
    es.addEventListener('open', () => {
      showStreamStatus(null);
      retryIn = 5000;
    });
    es.addEventListener('error', () => {
      if (es.readyState !== EventSource.CLOSED) {
        showStreamStatus(t('reconnecting'));
        return;
      }
      // The browser gave up (the server answered with an error status): try again later —
      // unless the session is over, which sends the person to log in again.
      showStreamStatus(t('disconnected'));
      if (source === es && retry === null) {
        retry = setTimeout(async () => {
          retry = null;
          const probe = await fetch(`/api/spaces/${encodeURIComponent(space)}/avatars`).catch(() => null);
          if (probe && probe.status === 401) {
            window.location.assign(`/login?next=${encodeURIComponent(`/s/${space}`)}`);
            return;
          }
          connect();
        }, retryIn);
        retryIn = Math.min(retryIn * 2, 60000);
      }
    });
    onEvent(es, 'snapshot', (data) => snapshot(data.avatars || []));
    onEvent(es, 'avatar', avatar);
    onEvent(es, 'left', (data) => left(data.person_id));
    onEvent(es, 'closed', () => {
      // Reconnecting would close another page of this session in turn.
      es.close();
      source = null;
      showStreamStatus(t('too_many_pages'));
    });
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

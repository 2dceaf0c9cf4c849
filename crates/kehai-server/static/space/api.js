// kehai's space page: the JSON API, with the page's CSRF token on every call.

import { csrf, errorWords, t } from './page.js';

export class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

/**
 * Calls the JSON API. Resolves to the parsed body (or null when empty); rejects with an ApiError
 * whose message is fit to show (ours for the errors a person can cause, else the server's, else a
 * generic one).
 */
export async function api(method, path, body) {
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
    const message = errorWords(error.code) || error.message || t('request_failed');
    throw new ApiError(error.code || `http_${response.status}`, message, response.status);
  }
  return json;
}

// kehai: the sign-in popup's last page. Tells the page that opened it which provider it was for
// and what happened (so its profile dialog updates without a reload), closes on CLOSE, and copies
// the admin-consent link. No inline script: the CSP forbids it.
(() => {
  'use strict';
  const result = document.getElementById('connect-result');
  if (!result) return;
  const { provider, outcome } = result.dataset;
  // Only our own origin may hear it.
  if (window.opener && !window.opener.closed) {
    try {
      window.opener.postMessage({ type: 'kehai:connect', provider, outcome }, window.location.origin);
    } catch {
      // The opener navigated elsewhere: nothing to tell.
    }
  }
  const close = document.getElementById('close-window');
  if (close) {
    close.addEventListener('click', () => {
      window.close();
      // Not a popup (opened directly): go back to the start page instead.
      setTimeout(() => { window.location.href = '/'; }, 200);
    });
  }
  const copy = document.getElementById('copy-admin-url');
  const source = document.getElementById('admin-url');
  if (copy && source) {
    copy.addEventListener('click', async () => {
      source.select();
      try {
        await navigator.clipboard.writeText(source.value);
      } catch {
        document.execCommand('copy');
      }
      copy.textContent = copy.dataset.copied || copy.textContent;
    });
  }
})();

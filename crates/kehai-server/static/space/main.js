// kehai: the space page. Keeps the avatar list live over server-sent events and runs the profile
// dialog with its Status section. Plain ES modules, no dependencies and no build step:
//
//   page.js          what the server put in the page; strings, elements, announcements
//   api.js           the JSON API with the CSRF token
//   avatars.js       the list of avatars
//   profile.js       the profile dialog (name, emoji)
//   integrations.js  one card per presence provider in the Status section
//   live.js          the space's event stream

import { applyAvatar, onEditProfile, removeAvatar, replaceAll, sortList } from './avatars.js';
import { initIntegrations, refreshAll } from './integrations.js';
import { follow } from './live.js';
import { openProfileDialog, openStatus, showError, whenOpened } from './profile.js';

onEditProfile(openProfileDialog);
whenOpened(refreshAll);
initIntegrations({ onError: showError, openStatus });
follow({
  snapshot: replaceAll,
  avatar: (a) => {
    applyAvatar(a);
    sortList();
  },
  left: (id) => removeAvatar(id),
});

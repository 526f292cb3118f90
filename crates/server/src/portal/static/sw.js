// radmfa portal service worker: shows a sign-in approval pushed by the
// server (RFC 8030 / 8291; the browser decrypts it) and opens the approval
// page when the notification is clicked. The message carries only the
// approval id and the application's name.
'use strict';

const ID = /^n[0-9]{1,5}-[0-9a-f]{32}$/;

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));

self.addEventListener('push', (e) => {
  let msg = {};
  try {
    msg = e.data ? e.data.json() : {};
  } catch (_) {
    return;
  }
  if (typeof msg.id !== 'string' || !ID.test(msg.id)) return;
  const app = typeof msg.app === 'string' ? msg.app.slice(0, 64) : '';
  e.waitUntil(
    self.registration.showNotification('Sign-in request', {
      body: (app ? app + ': ' : '') + 'tap to approve or deny',
      tag: msg.id,
      requireInteraction: true,
      data: { url: '/approve/' + msg.id },
    })
  );
});

self.addEventListener('notificationclick', (e) => {
  e.notification.close();
  const url = e.notification.data && e.notification.data.url;
  if (typeof url === 'string' && url.startsWith('/approve/')) {
    e.waitUntil(self.clients.openWindow(url));
  }
});

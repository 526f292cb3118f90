// radmfa portal, devices page: registers this browser for sign-in
// approvals. Subscribes with the Push API (the server's VAPID key is in the
// form's data-key), puts the subscription into the form's hidden fields and
// submits the form (a normal POST with the portal's CSRF token).
'use strict';

(function () {
  const form = document.getElementById('register');
  if (!form) return;
  const status = document.getElementById('push-status');
  const say = (text) => {
    status.textContent = text;
  };
  const button = form.querySelector('button');
  if (!('serviceWorker' in navigator) || !('PushManager' in window)) {
    say(form.dataset.unsupported);
    button.disabled = true;
    return;
  }
  const key = () => {
    const b64 = form.dataset.key.replace(/-/g, '+').replace(/_/g, '/');
    const raw = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  };
  form.addEventListener('submit', async (ev) => {
    if (form.elements.endpoint.value) return;
    ev.preventDefault();
    button.disabled = true;
    try {
      const reg = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
      if ((await Notification.requestPermission()) !== 'granted') {
        say(form.dataset.denied);
        button.disabled = false;
        return;
      }
      const ready = await navigator.serviceWorker.ready;
      const manager = (ready || reg).pushManager;
      let sub = await manager.getSubscription();
      if (sub) await sub.unsubscribe();
      sub = await manager.subscribe({ userVisibleOnly: true, applicationServerKey: key() });
      const j = sub.toJSON();
      form.elements.endpoint.value = j.endpoint;
      form.elements.p256dh.value = j.keys.p256dh;
      form.elements.auth.value = j.keys.auth;
      form.submit();
    } catch (e) {
      say(form.dataset.failed + ' (' + (e && e.message ? e.message : e) + ')');
      button.disabled = false;
    }
  });
})();

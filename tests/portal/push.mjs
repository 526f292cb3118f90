// Push approval in headless Chromium, as a user would: started twice by
// tests/push_e2e.rs.
//   PUSH_MODE=register: signs in (password, then the TOTP code the test
//     computed), checks the installable app's files (manifest, service
//     worker), registers this browser on the devices page and chooses
//     "Notification in the app" as the method. The Push API's subscribe()
//     needs the browser vendor's push service, which the test cannot reach:
//     it is replaced in the page by one that returns the subscription the
//     test made (its keys and its local push service); everything else is
//     the page's own script and forms.
//   PUSH_MODE=approve: opens the approval page of PUSH_ID in a fresh
//     context (no portal session, as from a notification) and approves.
// Prints one JSON line; exits non-zero on any failure.

import { chromium } from 'playwright-core';
import vm from 'node:vm';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`missing environment variable ${name}`);
  return v;
};
const BASE = env('PUSH_PORTAL');
const MODE = env('PUSH_MODE');

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function appFiles(context) {
  const get = async (path) => {
    const r = await context.request.get(`${BASE}${path}`);
    check(r.status() === 200, `${path} served (${r.status()})`);
    return [r.headers()['content-type'] || '', await r.text(), r.headers()];
  };
  const [mtype, mtext] = await get('/manifest.webmanifest');
  check(mtype.startsWith('application/manifest+json'), `manifest content type ${mtype}`);
  const m = JSON.parse(mtext);
  check(m.name && m.short_name && m.start_url === '/home' && m.display === 'standalone', 'manifest fields');
  check(Array.isArray(m.icons) && m.icons.length > 0, 'manifest icons');
  const [itype] = await get(m.icons[0].src);
  check(itype.startsWith(m.icons[0].type), `icon type ${itype}`);
  for (const js of ['/sw.js', '/devices.js']) {
    const [jtype, jtext, headers] = await get(js);
    check(jtype.startsWith('text/javascript'), `${js} content type ${jtype}`);
    new vm.Script(jtext, { filename: js }); // parses, or throws
    check((headers['content-security-policy'] || '').includes("script-src 'self'"), `${js} CSP`);
  }
}

async function register(browser) {
  const sub = JSON.parse(env('PUSH_SUBSCRIPTION'));
  const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'en-US' });
  await context.addInitScript((sub) => {
    const manager = {
      getSubscription: async () => null,
      subscribe: async (opts) => {
        const key = new Uint8Array(opts.applicationServerKey);
        // Kept across the form's navigation.
        sessionStorage.setItem('subscribedWith', btoa(String.fromCharCode(...key))
          .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''));
        sessionStorage.setItem('userVisibleOnly', String(opts.userVisibleOnly));
        return { toJSON: () => sub, unsubscribe: async () => true };
      },
    };
    const registration = { pushManager: manager };
    const container = {
      register: async (url, opts) => {
        sessionStorage.setItem('swRegistered', JSON.stringify([url, opts && opts.scope]));
        return registration;
      },
      ready: Promise.resolve(registration),
    };
    Object.defineProperty(navigator, 'serviceWorker', { get: () => container });
    window.PushManager = window.PushManager || function PushManager() {};
    Notification.requestPermission = async () => 'granted';
  }, sub);
  await appFiles(context);
  const page = await context.newPage();
  await page.goto(`${BASE}/signin`);
  check((await page.locator('link[rel=manifest]').getAttribute('href')) === '/manifest.webmanifest', 'manifest linked');
  await page.getByLabel('User name').fill(env('PUSH_USER'));
  await page.getByLabel('Password', { exact: true }).fill(env('PUSH_PASSWORD'));
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${BASE}/verify`);
  await page.getByLabel('Code', { exact: true }).fill(env('PUSH_CODE'));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.waitForURL(`${BASE}/home`);

  await page.getByRole('link', { name: 'Devices' }).click();
  await page.waitForURL(`${BASE}/devices`);
  check((await page.locator('#no-devices').count()) === 1, 'no device yet');
  const key = await page.locator('#register').getAttribute('data-key');
  await page.getByLabel('Name of this device').fill('Test phone');
  await page.getByRole('button', { name: 'Register this browser' }).click();
  await page.waitForURL(`${BASE}/devices`);
  await page.locator('#devices').waitFor();
  const status = (await page.locator('[role=status]').first().innerText()).trim();
  check(status.includes('registered for sign-in approvals'), `registered notice: ${status}`);
  const row = (await page.locator('#devices tbody tr').first().innerText()).trim();
  check(row.includes('Test phone'), `device listed: ${row}`);
  check(!(await page.content()).includes(sub.endpoint), 'the endpoint URL is not on the page');
  const subscribedWith = await page.evaluate(() => sessionStorage.getItem('subscribedWith'));
  check(subscribedWith === key, 'subscribed with the served VAPID key');
  const sw = await page.evaluate(() => JSON.parse(sessionStorage.getItem('swRegistered')));
  check(sw[0] === '/sw.js' && sw[1] === '/', `service worker registered: ${sw}`);
  check((await page.evaluate(() => sessionStorage.getItem('userVisibleOnly'))) === 'true', 'userVisibleOnly');

  // Choose the notification as the method.
  await page.getByRole('link', { name: 'Method' }).click();
  await page.waitForURL(`${BASE}/method`);
  await page.getByLabel('Notification in the app').check();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.waitForURL(`${BASE}/home`);
  check((await page.locator('#method').innerText()).trim() === 'Notification in the app', 'method is push');
  await context.close();
  return { key, row };
}

async function approve(browser) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'en-US' });
  const page = await context.newPage();
  await page.goto(`${BASE}/approve/${env('PUSH_ID')}`);
  check((await page.title()).startsWith('Approve this sign-in?'), 'approval page title');
  const shown = {
    user: (await page.locator('#approval-user').innerText()).trim(),
    app: (await page.locator('#approval-app').innerText()).trim(),
    source: (await page.locator('#approval-source').innerText()).trim(),
    time: (await page.locator('#approval-time').innerText()).trim(),
  };
  check((await page.getByRole('button', { name: 'Deny' }).count()) === 1, 'Deny button');
  check((await page.getByRole('button', { name: 'This was not me' }).count()) === 1, 'not me button');
  await page.getByRole('button', { name: 'Approve' }).click();
  await page.locator('[role=status]').waitFor();
  const done = (await page.locator('[role=status]').innerText()).trim();
  check(done.startsWith('Approved'), `approved: ${done}`);
  await context.close();
  return shown;
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox'],
  headless: true,
});
try {
  const result = MODE === 'register' ? await register(browser) : await approve(browser);
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
}

// Drives the radmfa user portal in headless Chromium, as a user would.
// Started by tests/portal_e2e.rs, which starts the servers and the gateway
// simulator and passes everything through the environment. Prints one JSON
// line (what the Rust test checks next) and exits non-zero on any failure.

import { chromium } from 'playwright-core';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`missing environment variable ${name}`);
  return v;
};
const A = env('PORTAL_A');
const B = env('PORTAL_B');
const USER = env('PORTAL_USER');
const PASSWORD = env('PORTAL_PASSWORD');
const NEW_PIN = env('PORTAL_NEW_PIN');
const PHONE = env('PORTAL_PHONE');
const REPORTER = env('PORTAL_REPORTER');
const SHOTS = env('PORTAL_SHOTS');
const SIM = { addr: env('SIM_ADDR'), cert: env('SIM_CERT'), key: env('SIM_KEY') };

fs.mkdirSync(SHOTS, { recursive: true });

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

// ---- RFC 4648 base32 and RFC 6238 TOTP (SHA-1, 6 digits, 30 s) ----
function base32Decode(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of s.replace(/[\s=]/g, '').toUpperCase()) {
    const i = alphabet.indexOf(c);
    if (i < 0) throw new Error(`not base32: ${c}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

function hotp(key, counter) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = crypto.createHmac('sha1', key).update(msg).digest();
  const off = mac[mac.length - 1] & 0x0f;
  const bin = (mac.readUInt32BE(off) & 0x7fffffff) % 1_000_000;
  return String(bin).padStart(6, '0');
}

const step = () => Math.floor(Date.now() / 1000 / 30);

// Near the end of a time step, wait for the next one, so the server sees the
// same step as the code computed here.
async function settledStep() {
  const into = (Date.now() / 1000) % 30;
  if (into > 27) await new Promise((r) => setTimeout(r, (30.2 - into) * 1000));
  return step();
}

// ---- the gateway simulator's record of text messages ----
function simMessages(to) {
  return new Promise((resolve, reject) => {
    const [host, port] = SIM.addr.split(':');
    const req = https.request(
      {
        host,
        port: Number(port),
        path: `/sim/messages?to=${encodeURIComponent(to)}`,
        method: 'GET',
        ca: fs.readFileSync(SIM.cert),
        checkServerIdentity: () => undefined,
        headers: { Authorization: `Bearer ${SIM.key}` },
      },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => {
          try {
            resolve(JSON.parse(body).filter((r) => r.kind === 'sms').map((r) => r.body));
          } catch (e) {
            reject(e);
          }
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function waitForSms(to, already) {
  for (let i = 0; i < 100; i++) {
    const got = await simMessages(to);
    if (got.length > already) return got[got.length - 1].replace(/\D/g, '');
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no text message reached ${to}`);
}

let shot = 0;
async function screenshot(page, name) {
  shot += 1;
  const file = path.join(SHOTS, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
}

async function text(page, selector) {
  return (await page.locator(selector).innerText()).trim();
}

async function signIn(page, base, user, password) {
  await page.goto(`${base}/signin`);
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox'],
  headless: true,
});
const result = {};
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'en-US' });
  const page = await context.newPage();

  // Sign-in page, and a POST without the form's CSRF token.
  await page.goto(`${A}/signin`);
  check((await page.title()).startsWith('Sign in'), 'sign-in page title');
  await screenshot(page, 'signin');
  const cookies = await context.cookies(A);
  const session = cookies.find((c) => c.name === '__Host-radmfa-portal');
  check(session && session.secure && session.httpOnly && session.sameSite === 'Strict', 'cookie flags');
  let r = await context.request.post(`${A}/signin`, {
    form: { user: USER, password: PASSWORD },
    maxRedirects: 0,
  });
  check(r.status() === 403, `sign-in POST without CSRF token refused (got ${r.status()})`);
  r = await context.request.post(`${A}/signin`, {
    form: { user: USER, password: PASSWORD, csrf: '0'.repeat(32) },
    maxRedirects: 0,
  });
  check(r.status() === 403, `sign-in POST with a wrong CSRF token refused (got ${r.status()})`);

  // Wrong password.
  await signIn(page, A, USER, 'not-the-password');
  check((await text(page, '[role=alert]')).includes('Wrong user name or password'), 'wrong password message');

  // First factor only (no second factor yet), and the PIN the admin set must be changed first.
  await signIn(page, A, USER, PASSWORD);
  await page.waitForURL(`${A}/pin`);
  check((await text(page, '#pin-required')).includes('Choose your own PIN'), 'forced PIN change');
  await screenshot(page, 'pin-change-required');
  // Pages wait until the PIN is changed.
  await page.goto(`${A}/enroll`);
  await page.waitForURL(`${A}/pin`);
  // A signed-in POST without the token is refused too.
  r = await context.request.post(`${A}/pin`, { form: { pin: NEW_PIN, pin2: NEW_PIN }, maxRedirects: 0 });
  check(r.status() === 403, `PIN POST without CSRF token refused (got ${r.status()})`);
  for (const [bad, why] of [
    ['1234', 'the digits form a run'],
    ['7777', 'all digits are the same'],
    ['1234'.slice(0, 3), 'must have 4 to 10 digits'],
  ]) {
    await page.getByLabel('New PIN', { exact: true }).fill(bad);
    await page.getByLabel('New PIN again').fill(bad);
    await page.getByRole('button', { name: 'Change PIN' }).click();
    check((await text(page, '[role=alert]')).includes(why), `trivial PIN ${bad} refused: ${why}`);
    if (bad === '1234') await screenshot(page, 'pin-refused');
  }
  await page.getByLabel('New PIN', { exact: true }).fill(NEW_PIN);
  await page.getByLabel('New PIN again').fill(NEW_PIN);
  await page.getByRole('button', { name: 'Change PIN' }).click();
  await page.waitForURL(`${A}/home`);
  check((await text(page, '[role=status]')).includes('Your PIN is changed'), 'PIN changed notice');
  check((await text(page, '#app')) === 'not set up', 'no app yet');
  await screenshot(page, 'home-before-enrollment');

  // Authenticator app: QR code and the key as text; confirm with a code.
  await page.getByRole('link', { name: 'Authenticator app' }).first().click();
  await page.waitForURL(`${A}/enroll`);
  check((await page.locator('svg.qr[role=img]').count()) === 1, 'QR code shown');
  const secret = await text(page, '#secret');
  check(/^[A-Z2-7]{32}$/.test(secret), `base32 secret shown (${secret.length} chars)`);
  await screenshot(page, 'enroll');
  const key = base32Decode(secret);
  await page.getByLabel('Code', { exact: true }).fill(hotp(key, step() + 5));
  await page.getByRole('button', { name: 'Confirm' }).click();
  check((await text(page, '[role=alert]')).includes('not correct'), 'a wrong code does not enroll');
  check((await text(page, '#secret')) === secret, 'the same key after a wrong code');
  // The previous step's code (inside the drift window): the current and next stay fresh.
  const confirmStep = (await settledStep()) - 1;
  await page.getByLabel('Code', { exact: true }).fill(hotp(key, confirmStep));
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.waitForURL(`${A}/home`);
  check((await text(page, '[role=status]')).includes('authenticator app is set up'), 'enrolled notice');
  check((await text(page, '#app')) === 'set up', 'app set up');
  result.secret = secret;

  // Phone number, verified with a code sent by text message.
  await page.getByRole('link', { name: 'Phone' }).first().click();
  await page.waitForURL(`${A}/phone`);
  await page.getByLabel('Mobile phone number').fill('0612');
  await page.getByRole('button', { name: 'Send a code' }).click();
  check((await text(page, '[role=alert]')).includes('international format'), 'bad phone number refused');
  const before = (await simMessages(PHONE)).length;
  await page.getByLabel('Mobile phone number').fill(PHONE);
  await page.getByRole('button', { name: 'Send a code' }).click();
  const smsCode = await waitForSms(PHONE, before);
  check(smsCode.length >= 4, 'SMS code received');
  await screenshot(page, 'phone-code-sent');
  await page.locator('#phone-code').fill(smsCode);
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.waitForURL(`${A}/home`);
  check((await text(page, '#phone')) === `•••• ${PHONE.slice(-4)}`, 'phone shown masked');
  check(!(await page.content()).includes(PHONE), 'the full number is not on the page');

  // Method choice.
  await page.getByRole('link', { name: 'Method' }).click();
  await page.waitForURL(`${A}/method`);
  check(await page.getByLabel('Code from the authenticator app').isChecked(), 'current method checked');
  await screenshot(page, 'method');
  await page.getByLabel('Code by text message').check();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.waitForURL(`${A}/home`);
  check((await text(page, '#method')) === 'Code by text message', 'method changed to SMS');
  await page.goto(`${A}/method`);
  await page.getByLabel('Code from the authenticator app').check();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.waitForURL(`${A}/home`);
  check((await text(page, '#method')) === 'Code from the authenticator app', 'method back to the app');

  // Sign out, then in again: now the PIN and a code are asked for.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${A}/signin`);
  check((await text(page, '[role=status]')).includes('signed out'), 'signed out');
  await page.goto(`${A}/home`);
  await page.waitForURL(`${A}/signin`);
  await signIn(page, A, USER, PASSWORD);
  await page.waitForURL(`${A}/verify`);
  await screenshot(page, 'verify');
  // The confirmation code cannot be replayed.
  await page.getByLabel('PIN', { exact: true }).fill(NEW_PIN);
  await page.getByLabel('Code', { exact: true }).fill(hotp(key, confirmStep));
  await page.getByRole('button', { name: 'Verify' }).click();
  check((await text(page, '[role=alert]')).includes('not correct'), 'replayed confirmation code refused');
  const signinStep = Math.max(await settledStep(), confirmStep + 1);
  await page.getByLabel('PIN', { exact: true }).fill(NEW_PIN);
  await page.getByLabel('Code', { exact: true }).fill(hotp(key, signinStep));
  await page.getByRole('button', { name: 'Verify' }).click();
  await page.waitForURL(`${A}/home`);
  result.signinStep = signinStep;
  // The audit log is written a few milliseconds behind the sign-in.
  let rows = [];
  for (let i = 0; i < 50; i++) {
    rows = await page.locator('#signins tbody tr').allInnerTexts();
    if (rows.length > 0 && rows[0].includes('portal+totp') && rows[0].includes('signed in')) break;
    await new Promise((r) => setTimeout(r, 100));
    await page.reload();
  }
  check(rows.length >= 3, `recent sign-ins listed (${rows.length})`);
  check(rows[0].includes('portal+totp') && rows[0].includes('signed in'), `newest first: ${rows[0]}`);
  await screenshot(page, 'home');
  // A new app (or phone) needs the current app's code first, not only the session.
  await page.getByRole('link', { name: 'Authenticator app' }).first().click();
  await page.waitForURL(`${A}/confirm?next=enroll`);
  check((await page.title()).startsWith('Confirm it is you'), 'confirmation page');
  check((await page.locator('#secret').count()) === 0, 'no new key before the confirmation');
  check(await page.getByLabel('Code', { exact: true }).isVisible(), 'code asked for');
  await screenshot(page, 'confirm-current-factor');

  // Node B (same cluster key) accepts node A's cookie: no sticky sessions needed.
  await page.goto(`${B}/home`);
  check(page.url() === `${B}/home`, `node B keeps the session (${page.url()})`);
  check((await text(page, '#account')).includes(USER), 'node B shows the account');
  await screenshot(page, 'home-on-node-b');
  await context.close();

  // Another user, in Dutch: "this was not me" on a sign-in.
  const nl = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'en-US' });
  const p2 = await nl.newPage();
  await p2.goto(`${A}/signin?lang=nl`);
  check((await p2.title()).startsWith('Aanmelden'), 'Dutch sign-in page');
  check((await p2.locator('html').getAttribute('lang')) === 'nl', 'html lang=nl');
  await screenshot(p2, 'signin-nl');
  await p2.getByLabel('Gebruikersnaam').fill(REPORTER);
  await p2.getByLabel('Wachtwoord').fill(PASSWORD);
  await p2.getByRole('button', { name: 'Aanmelden' }).click();
  await p2.waitForURL(`${A}/home`);
  check((await text(p2, '#no-second-factor')).includes('tweede factor'), 'Dutch: no second factor yet');
  const reportRows = await p2.locator('#signins tbody tr').allInnerTexts();
  check(reportRows.some((t) => t.includes('geweigerd')), 'the refused RADIUS sign-in is listed');
  await screenshot(p2, 'home-nl');
  await p2.getByRole('button', { name: /Dit was ik niet/ }).last().click();
  check((await p2.title()).startsWith('Aanmelding gemeld'), 'report confirmed');
  await screenshot(p2, 'reported-nl');
  await p2.goto(`${A}/home`);
  await p2.waitForURL(/\/signin$/);
  await signIn(p2, A, REPORTER, PASSWORD);
  check((await text(p2, '[role=alert]')).includes('disabled'), 'disabled after the report');
  await nl.close();
} catch (e) {
  // What the browser showed when a check failed.
  for (const ctx of browser.contexts()) {
    for (const pg of ctx.pages()) {
      const body = await pg.locator('body').innerText().catch(() => '');
      console.error(`page ${pg.url()}:\n${body}`);
    }
  }
  throw e;
} finally {
  await browser.close();
}
result.screenshots = shot;
console.log(JSON.stringify(result));

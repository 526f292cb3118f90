// The portal in each language, in headless Chromium. Started by
// tests/portal_e2e.rs (portal_pages_in_each_language), which passes the
// portal's address and, per language, a user whose `language` is it and the
// words to expect (read from the translation files). For each language: the
// sign-in page in the browser's language (Accept-Language), and the account
// page after signing in from an English browser, in the user's language.
// Exits non-zero on any failure.

import { chromium } from 'playwright-core';

const URL = process.env.PORTAL_URL;
const CASES = JSON.parse(process.env.PORTAL_CASES);
const PASSWORD = process.env.PORTAL_PASSWORD;

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox'],
  headless: true,
});
try {
  for (const c of CASES) {
    const t = c.texts;
    // The browser asks for this language first.
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, locale: c.locale });
    const page = await ctx.newPage();
    await page.goto(`${URL}/signin`);
    const title = await page.title();
    check(title.startsWith(t.sign_in_title), `${c.lang}: sign-in title "${title}"`);
    check((await page.locator('html').getAttribute('lang')) === c.lang, `${c.lang}: html lang`);
    check(await page.getByLabel(t.user_name, { exact: true }).isVisible(), `${c.lang}: user name label`);
    check(await page.getByLabel(t.password, { exact: true }).isVisible(), `${c.lang}: password label`);
    for (const other of c.others) {
      check(
        (await page.locator(`header a[hreflang="${other.lang}"]`).innerText()).trim() === other.name,
        `${c.lang}: a link to ${other.lang} named "${other.name}"`,
      );
    }
    await ctx.close();

    // An English browser; the user's own language wins once signed in.
    const en = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'en-US' });
    const p2 = await en.newPage();
    await p2.goto(`${URL}/signin`);
    await p2.getByLabel('User name', { exact: true }).fill(c.user);
    await p2.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await p2.getByRole('button', { name: 'Sign in' }).click();
    await p2.waitForURL(`${URL}/home`);
    const home = await p2.title();
    check(home.startsWith(t.home_title), `${c.lang}: account page title "${home}"`);
    check(
      (await p2.locator('#no-second-factor').innerText()).trim().startsWith(t.no_second_factor),
      `${c.lang}: no second factor yet`,
    );
    check(
      await p2.getByRole('button', { name: t.sign_out, exact: true }).isVisible(),
      `${c.lang}: sign-out button`,
    );
    await en.close();
  }
  console.log(JSON.stringify({ languages: CASES.length }));
} finally {
  await browser.close();
}

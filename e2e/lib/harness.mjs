// What every browser scenario script shares: the settings from the environment, checks that
// fail with a message, page helpers, and the runner that stops at the first failure after a
// screenshot of the page it failed on (failure.png).
//
//   MERCATO_URL=http://127.0.0.1:8080 ADMIN_EMAIL=… ADMIN_PASSWORD=… SCREENSHOTS=dir node <script>
//
// Uses the system chromium (CHROMIUM, default /usr/bin/chromium) through playwright-core;
// never downloads a browser.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const BASE = (process.env.MERCATO_URL ?? '').replace(/\/$/, '');
export const ADMIN_EMAIL = process.env.ADMIN_EMAIL ?? '';
export const ADMIN_PASSWORD = process.env.ADMIN_PASSWORD ?? '';
export const SHOTS = process.env.SCREENSHOTS ?? 'screenshots';
const EXECUTABLE = process.env.CHROMIUM ?? '/usr/bin/chromium';

if (!BASE || !ADMIN_EMAIL || !ADMIN_PASSWORD) {
  console.error('MERCATO_URL, ADMIN_EMAIL and ADMIN_PASSWORD are required');
  process.exit(2);
}
mkdirSync(SHOTS, { recursive: true });

/** A unique suffix for what one run creates. */
export const run = Date.now().toString(36);
export const card = { ok: '4242 4242 4242 4242', declined: '4000 0000 0000 0002', exp: '12/30', cvc: '123' };

export class Failure extends Error {}
export function check(ok, message) {
  if (!ok) throw new Failure(message);
}

let current = null; // the page a failure is screenshotted from

/** Makes `page` the one screenshotted if a check fails. */
export function watch(page) {
  current = page;
}

export async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

export async function open(page, path) {
  current = page;
  const response = await page.goto(BASE + path);
  check(response && response.ok(), `GET ${path} answered ${response?.status()} (${page.url()})`);
  return response;
}

export async function text(locator) {
  return ((await locator.textContent()) ?? '').replace(/\s+/g, ' ').trim();
}

/** The page's error notices ('' when there is none). */
export async function alerts(page) {
  return (await page.locator('main [role=alert]').allTextContents()).join(' | ').trim();
}

export async function signInAdmin(page, next) {
  await open(page, `/login?next=${encodeURIComponent(next)}`);
  await page.fill('input[name=email]', ADMIN_EMAIL);
  await page.fill('input[name=password]', ADMIN_PASSWORD);
  await Promise.all([
    page.waitForURL((url) => url.pathname !== '/login'),
    page.getByRole('button', { name: 'Sign in' }).click(),
  ]);
  check(new URL(page.url()).pathname === next, `admin sign-in landed on ${page.url()}, expected ${next}`);
}

export const browser = await chromium.launch({
  executablePath: EXECUTABLE,
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});

const scenarios = [];
export const scenario = (name, body) => scenarios.push({ name, body });

/** Runs the scenarios in order, stopping at the first failure; exits with the outcome. */
export async function runScenarios() {
  let failed = false;
  try {
    for (const { name, body } of scenarios) {
      const started = Date.now();
      try {
        await body();
        console.log(`ok   ${name} (${Date.now() - started} ms)`);
      } catch (error) {
        failed = true;
        console.log(`FAIL ${name}\n     ${error instanceof Failure ? error.message : error.stack}`);
        if (current && !current.isClosed()) {
          console.log(`     at ${current.url()}; screenshot ${join(SHOTS, 'failure.png')}`);
          await shot(current, 'failure').catch(() => {});
        }
        break;
      }
    }
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
}

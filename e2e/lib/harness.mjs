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

async function screenshot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Saves a screenshot of `page` as `name`.png, then checks that the page is accessible. */
export async function shot(page, name) {
  await screenshot(page, name);
  await checkAccessible(page, name);
}

/**
 * Checks what a page owes every visitor: a language, one h1, a name for every form control,
 * button and image, no tab order forced by positive tabindex, a skip link first in the tab
 * order, and text contrast of at least 4.5:1 (3:1 for large text) against its background.
 */
export async function checkAccessible(page, what) {
  const problems = await page.evaluate(() => {
    const found = [];
    const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
    const describe = (el) => `<${el.tagName.toLowerCase()}${el.name ? ` name=${el.name}` : ''}${el.id ? ` id=${el.id}` : ''}>`;
    if (!document.documentElement.lang) found.push('the page has no lang');
    const h1 = document.querySelectorAll('h1').length;
    if (h1 !== 1) found.push(`${h1} h1 headings`);
    for (const el of document.querySelectorAll('input, select, textarea')) {
      if (el.type === 'hidden' || !visible(el)) continue;
      const named = el.labels?.length > 0 || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
      if (!named) found.push(`${describe(el)} has no label`);
    }
    for (const el of document.querySelectorAll('button, a[href]')) {
      if (!visible(el)) continue;
      if (!(el.textContent.trim() || el.getAttribute('aria-label') || el.querySelector('img[alt]:not([alt=""])'))) {
        found.push(`${describe(el)} has no accessible name`);
      }
    }
    for (const img of document.querySelectorAll('img')) {
      if (!img.hasAttribute('alt')) found.push(`<img src=${img.getAttribute('src')}> has no alt`);
    }
    for (const el of document.querySelectorAll('[tabindex]')) {
      if (Number(el.getAttribute('tabindex')) > 0) found.push(`${describe(el)} forces the tab order`);
    }
    // Relative luminance and contrast as WCAG 2 defines them.
    const rgba = (text) => (text.match(/[\d.]+/g) ?? []).map(Number);
    const luminance = ([r, g, b]) => {
      const c = [r, g, b].map((v) => v / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
      return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    };
    const background = (el) => {
      for (let node = el; node; node = node.parentElement) {
        const [r, g, b, a = 1] = rgba(getComputedStyle(node).backgroundColor);
        if (a > 0.5) return [r, g, b];
      }
      return [255, 255, 255];
    };
    const seen = new Set();
    for (const el of document.querySelectorAll('body *')) {
      const ownText = [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
      if (!ownText || !visible(el) || el.closest('[aria-hidden=true]')) continue;
      const style = getComputedStyle(el);
      const fg = rgba(style.color);
      const ratio = (() => {
        const [l1, l2] = [luminance(fg), luminance(background(el))].sort((a, b) => b - a);
        return (l1 + 0.05) / (l2 + 0.05);
      })();
      const size = parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5)) {
        const key = `${style.color} on ${background(el)}`;
        if (!seen.has(key)) {
          seen.add(key);
          found.push(`${describe(el)} “${el.textContent.trim().slice(0, 30)}”: contrast ${ratio.toFixed(2)}:1 (${key})`);
        }
      }
    }
    return found;
  });
  check(problems.length === 0, `${what} is not accessible:\n       ${problems.join('\n       ')}`);
  // Without positive tabindex the tab order is the document order: the skip link must lead it,
  // so keyboard users pass the header at once.
  const first = await page.evaluate(() => {
    const focusable = 'a[href], button:not([disabled]), input:not([type=hidden]):not([disabled]), select, textarea, [tabindex]';
    return document.querySelector(focusable)?.className ?? '';
  });
  check(first.includes('skip'), `${what}: the first focusable element is "${first}", not the skip link`);
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

/** Fills the checkout form with a shopper in Berlin paying with card `number`. */
export async function fillCheckout(page, email, number) {
  await page.fill('input[name=email]', email);
  await page.fill('input[name=name]', 'Ada Lovelace');
  await page.fill('input[name=line1]', 'Hauptstraße 1');
  await page.fill('input[name=city]', 'Berlin');
  await page.fill('input[name=postal_code]', '10115');
  await page.fill('input[name=country]', 'DE');
  await page.fill('input[name=card_number]', number);
  await page.fill('input[name=exp]', card.exp);
  await page.fill('input[name=cvc]', card.cvc);
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
          await screenshot(current, 'failure').catch(() => {});
        }
        break;
      }
    }
  } finally {
    await browser.close();
  }
  process.exit(failed ? 1 : 0);
}

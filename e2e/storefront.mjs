// Headless-browser tests of the storefront and the admin against a running `mercato up --demo`.
//
//   MERCATO_URL=http://127.0.0.1:8080 ADMIN_EMAIL=… ADMIN_PASSWORD=… SCREENSHOTS=dir node storefront.mjs
//
// Run by apps/mercato/tests/it/browser.rs. Uses the system chromium (CHROMIUM, default
// /usr/bin/chromium) through playwright-core; never downloads a browser. Exits non-zero on the
// first failed check, after a screenshot of the page it failed on (failure.png).

import {
  ADMIN_EMAIL, ADMIN_PASSWORD, BASE, browser, card, check, fillCheckout, open, run, runScenarios, scenario, shot, signInAdmin, text, watch,
} from './lib/harness.mjs';

const PAGE_BUDGET = 100 * 1024;
const MAIL_WAIT_MS = 15_000;

const shopper = `shopper-${run}@example.com`;

/** Adds the first available variant of the product open in `page` to the cart. */
async function addToCart(page) {
  const sku = await page.$$eval('#variant option', (options) => {
    const available = options.find((o) => Number(o.dataset.available) > 0);
    return (available ?? options[0])?.value;
  });
  check(sku, `no variant to choose on ${page.url()}`);
  await page.selectOption('#variant', sku);
  const from = new URL(page.url()).pathname;
  await Promise.all([
    page.waitForURL((url) => url.pathname !== from),
    page.getByRole('button', { name: 'Add to cart' }).click(),
  ]);
  const alert = page.locator('main [role=alert]');
  check(await alert.count() === 0, `"Add to cart" of ${sku} failed: ${await alert.count() && (await text(alert.first()))} (${page.url()})`);
  check(new URL(page.url()).pathname === '/cart', `"Add to cart" landed on ${page.url()}, expected /cart`);
  check(await page.locator('table tbody tr').count() > 0, `cart is empty after "Add to cart" (${page.url()})`);
  return sku;
}

async function noHorizontalOverflow(page, what) {
  const { scrollWidth, innerWidth } = await page.evaluate(() => ({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
  }));
  check(scrollWidth <= innerWidth, `${what} overflows horizontally on a phone: scrollWidth ${scrollWidth} > innerWidth ${innerWidth}`);
}

const state = {};

scenario('a. search, add to cart, pay, receipt in the mailbox', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  state.shopperContext = context;
  await open(page, '/');
  const first = page.locator('li.card.product', { hasText: 'In stock' }).first();
  check(await first.count() === 1, 'home page shows no product card in stock');
  const title = await text(first.locator('a strong'));
  const word = title.split(/[^\p{L}\p{N}]+/u).filter((w) => w.length >= 3).sort((a, b) => b.length - a.length)[0];
  check(word, `no searchable word in the first product title "${title}"`);
  await shot(page, 'home');

  await page.fill('#site-search', word);
  await Promise.all([page.waitForURL(/\/search\?/), page.press('#site-search', 'Enter')]);
  state.searchPath = new URL(page.url()).pathname + new URL(page.url()).search;
  const hit = page.locator('li.card.product a', { hasText: title }).first();
  check(await hit.count() === 1, `searching "${word}" does not list "${title}" (${page.url()}): ${await text(page.locator('main'))}`);
  await shot(page, 'search');
  await Promise.all([page.waitForURL(/\/products\//), hit.click()]);
  state.productPath = new URL(page.url()).pathname;
  check(await text(page.locator('h1')) === title, `product page heading is "${await text(page.locator('h1'))}", expected "${title}"`);
  const picture = page.locator('main img').first();
  check(await picture.count() === 1, 'the product page shows no picture');
  await picture.evaluate((img) => img.decode());
  check(await picture.evaluate((img) => img.naturalWidth > 0), `the picture ${await picture.getAttribute('src')} did not load`);
  await shot(page, 'product');

  await addToCart(page);
  check((await text(page.locator('table tbody').first())).includes(title), `cart does not list "${title}"`);
  await shot(page, 'cart');
  await Promise.all([page.waitForURL(/\/checkout$/), page.getByRole('link', { name: 'Check out' }).click()]);
  await fillCheckout(page, shopper, card.ok);
  await shot(page, 'checkout');
  await Promise.all([
    page.waitForURL(/\/orders\/[^/?]+\?/),
    page.getByRole('button', { name: /^Pay / }).click(),
  ]);
  const notice = await text(page.locator('main'));
  check(notice.includes('Thank you'), `order page after payment has no "Thank you": ${notice.slice(0, 300)}`);
  const status = await text(page.locator('.status').first());
  check(status === 'Paid', `order status after payment is "${status}", expected "Paid"`);
  state.orderId = new URL(page.url()).pathname.split('/').pop();
  state.orderNumber = (await text(page.locator('h1'))).replace(/^Order /, '');
  await shot(page, 'order-confirmation');

  const admin = await browser.newContext();
  const mailPage = await admin.newPage();
  await signInAdmin(mailPage, '/admin/orders');
  const deadline = Date.now() + MAIL_WAIT_MS;
  let receipt = 0;
  for (;;) {
    watch(mailPage);
    const response = await mailPage.goto(`${BASE}/admin/mail`);
    check(response.ok(), `/admin/mail answers ${response.status()} to the signed-in admin (the admin nav links to it): ${(await response.text()).slice(0, 200)}`);
    receipt = await mailPage.locator('article', { hasText: `To ${shopper}` }).filter({ hasText: state.orderNumber }).count();
    if (receipt > 0 || Date.now() > deadline) break;
    await mailPage.waitForTimeout(500);
  }
  check(receipt > 0, `no receipt for order ${state.orderNumber} to ${shopper} in /admin/mail within ${MAIL_WAIT_MS / 1000} s`);
  await admin.close();
});

scenario('b. a declined card keeps the cart', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await open(page, state.productPath);
  const title = await text(page.locator('h1'));
  await addToCart(page);
  await open(page, '/checkout');
  await fillCheckout(page, `declined-${run}@example.com`, card.declined);
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: /^Pay / }).click()]);
  await page.waitForLoadState('load');
  const error = page.locator('#checkout-error');
  check(await error.isVisible(), `no visible #checkout-error after a declined card (${page.url()}): ${(await text(page.locator('main'))).slice(0, 300)}`);
  console.log(`   declined: "${await text(error)}"`);
  await open(page, '/cart');
  check((await text(page.locator('main'))).includes(title), `cart lost "${title}" after a declined payment`);
  await context.close();
});

scenario('c. admin ships the order; the shopper sees it', async () => {
  check(state.orderId, 'no order from scenario a');
  const admin = await browser.newContext();
  const page = await admin.newPage();
  await signInAdmin(page, '/admin/orders');
  const link = page.locator(`a[href="/admin/orders/${state.orderId}"]`);
  check(await link.count() === 1, `/admin/orders does not list order ${state.orderId}`);
  await shot(page, 'admin-orders');
  await Promise.all([page.waitForURL(new RegExp(`/admin/orders/${state.orderId}$`)), link.click()]);
  check((await text(page.locator('main'))).includes(shopper), `admin order page does not show the shopper ${shopper}`);
  await shot(page, 'admin-order');
  const tracking = `TRK${run.toUpperCase()}`;
  await page.fill('input[name=carrier]', 'DHL');
  await page.fill('input[name=tracking_number]', tracking);
  await Promise.all([page.waitForLoadState('load'), page.getByRole('button', { name: 'Mark shipped' }).click()]);
  await page.waitForLoadState('load');
  const alert = page.locator('main [role=alert]');
  check(await alert.count() === 0, `"Mark shipped" failed: ${await alert.count() && (await text(alert.first()))}`);
  await admin.close();

  const shopperPage = await state.shopperContext.newPage();
  await open(shopperPage, `/orders/${state.orderId}?email=${encodeURIComponent(shopper)}`);
  const status = await text(shopperPage.locator('.status').first());
  check(status === 'Shipped', `shopper's order page shows status "${status}" after "Mark shipped", expected "Shipped"`);
  const shown = shopperPage.locator('.tracking');
  check(await shown.count() === 1 && (await text(shown)) === tracking, `shopper's order page does not show tracking number ${tracking}`);
  await shopperPage.close();
});

scenario('d. a product title is shown as text, never run', async () => {
  const login = await fetch(`${BASE}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
  });
  check(login.ok, `POST /api/v1/auth/login answered ${login.status}`);
  const { access_token: token } = await login.json();
  const title = '<script>alert(1)</script>';
  const created = await fetch(`${BASE}/api/v1/products`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({
      title,
      slug: `xss-${run}`,
      status: 'active',
      variants: [{ sku: `XSS-${run}`, prices: [{ amount: 999, currency: 'EUR' }] }],
    }),
  });
  const body = await created.text();
  check(created.ok, `POST /api/v1/products answered ${created.status}: ${body}`);
  const product = JSON.parse(body);
  const context = await browser.newContext();
  const page = await context.newPage();
  const dialogs = [];
  page.on('dialog', (dialog) => {
    dialogs.push(dialog.message());
    dialog.dismiss().catch(() => {});
  });
  await open(page, `/products/${product.slug ?? product.id}`);
  await page.waitForLoadState('networkidle');
  check(dialogs.length === 0, `a dialog fired on the product page: ${dialogs.join(', ')}`);
  const heading = page.locator('h1');
  check(await heading.isVisible() && (await heading.textContent()) === title, `product heading is "${await heading.textContent()}", expected the literal "${title}"`);
  await context.close();
});

scenario('e. phone viewport: no horizontal overflow', async () => {
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 3,
    isMobile: true,
    hasTouch: true,
  });
  const page = await context.newPage();
  await open(page, '/');
  await noHorizontalOverflow(page, '/');
  await shot(page, 'phone-home');
  await open(page, state.productPath);
  await noHorizontalOverflow(page, state.productPath);
  await addToCart(page);
  await noHorizontalOverflow(page, '/cart');
  await context.close();
});

scenario('f. page weight: HTML + JS under 100 KB', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await open(page, state.productPath);
  await addToCart(page); // /checkout needs a cart
  for (const path of ['/', state.searchPath, state.productPath, '/cart', '/checkout']) {
    const bodies = [];
    const listener = (response) => {
      const type = response.request().resourceType();
      if (type === 'document' || type === 'script') bodies.push(response.body().then((b) => b.length, () => 0));
    };
    page.on('response', listener);
    await open(page, path);
    await page.waitForLoadState('networkidle');
    page.off('response', listener);
    const bytes = (await Promise.all(bodies)).reduce((a, b) => a + b, 0);
    console.log(`   ${path}: ${bytes} bytes of HTML + JS`);
    check(bytes < PAGE_BUDGET, `${path} weighs ${bytes} bytes of HTML + JS, over ${PAGE_BUDGET}`);
  }
  await context.close();
});

scenario('g. account: sign up, preferences, an address offered at checkout, password reset by emailed code', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const email = `member-${run}@example.com`;
  await open(page, '/register');
  await page.fill('input[name=name]', 'Grace Hopper');
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', 'first-password-42');
  await Promise.all([page.waitForURL(/\/account/), page.getByRole('button', { name: 'Create account' }).click()]);
  check(await text(page.locator('h1')) === 'Hello, Grace Hopper', `account page greets "${await text(page.locator('h1'))}"`);
  for (const heading of ['Your orders', 'Addresses', 'Notifications', 'Inbox']) {
    check(await page.getByRole('heading', { name: heading }).count() > 0, `account page has no "${heading}" section`);
  }
  await page.uncheck('input[name=sms]');
  await Promise.all([page.waitForURL(/\/account/), page.getByRole('button', { name: 'Save' }).click()]);
  check(!(await page.isChecked('input[name=sms]')), 'turning text messages off did not stick');
  check(await page.isChecked('input[name=email]'), 'email offers were turned off without being asked');

  await page.locator('summary', { hasText: 'Add an address' }).click();
  const book = page.locator('form[action="/account/addresses"]');
  await book.locator('input[name=label]').fill('Home');
  await book.locator('input[name=line1]').fill('Invalidenstraße 7');
  await book.locator('input[name=city]').fill('Berlin');
  await book.locator('input[name=postal_code]').fill('10115');
  await Promise.all([page.waitForURL(/\/account/), book.getByRole('button', { name: 'Save address' }).click()]);
  check(await page.locator('li.saved-address', { hasText: 'Invalidenstraße 7' }).count() === 1, 'the saved address is not in the account');
  await shot(page, 'account');

  await open(page, '/');
  await Promise.all([
    page.waitForURL(/\/products\//),
    page.locator('li.card.product', { hasText: 'In stock' }).first().locator('a').first().click(),
  ]);
  await addToCart(page);
  await open(page, '/checkout');
  check(await page.inputValue('input[name=line1]') === 'Invalidenstraße 7', 'checkout does not offer the saved address');
  check(await page.inputValue('input[name=name]') === 'Grace Hopper', 'checkout does not fill in the saved name');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await open(page, '/login');
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await page.fill('input[name=email]', email);
  await page.getByRole('button', { name: 'Send me a code' }).click();
  check(await page.locator('[role=status]').count() === 1, `no confirmation after asking for a code: ${await text(page.locator('main'))}`);

  const admin = await browser.newContext();
  const mail = await admin.newPage();
  await signInAdmin(mail, '/admin/orders');
  let code = null;
  const deadline = Date.now() + MAIL_WAIT_MS;
  while (!code && Date.now() < deadline) {
    await open(mail, '/admin/mail');
    const article = mail.locator('article', { hasText: `To ${email}` }).filter({ hasText: 'Reset your password' });
    if (await article.count() > 0) {
      code = ((await text(article.first())).match(/new password: (\S+)/) ?? [])[1] ?? null;
    }
    if (!code) await mail.waitForTimeout(500);
  }
  await admin.close();
  check(code, `no password reset code for ${email} in /admin/mail`);

  watch(page);
  await page.fill('input[name=token]', code);
  await page.fill('input[name=new_password]', 'second-password-42');
  await Promise.all([page.waitForURL(/\/login/), page.getByRole('button', { name: 'Set the new password' }).click()]);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', 'second-password-42');
  await Promise.all([page.waitForURL(/\/account/), page.getByRole('button', { name: 'Sign in' }).click()]);
  check(await text(page.locator('h1')) === 'Hello, Grace Hopper', 'the new password does not sign in');
  await context.close();
});

scenario('h. admin: stock adjustments, low stock, customers; anonymous visitors sign in first', async () => {
  const anonymous = await browser.newContext();
  const visit = await anonymous.newPage();
  watch(visit);
  await visit.goto(`${BASE}/admin/inventory`);
  check(new URL(visit.url()).pathname === '/login', `an anonymous /admin/inventory landed on ${visit.url()}`);
  await anonymous.close();

  const admin = await browser.newContext();
  const page = await admin.newPage();
  await signInAdmin(page, '/admin/inventory');
  const row = page.locator('tr[data-sku]').first();
  check(await row.count() === 1, 'the inventory lists no SKU');
  const sku = await row.getAttribute('data-sku');
  const before = Number(await text(row.locator('.on-hand')));
  await page.fill('input[name=sku]', sku);
  await page.fill('input[name=delta]', '7');
  await page.selectOption('select[name=reason]', 'receipt');
  await Promise.all([page.waitForURL(/\/admin\/inventory/), page.getByRole('button', { name: 'Apply' }).click()]);
  const after = Number(await text(page.locator(`tr[data-sku="${sku}"] .on-hand`)));
  check(after === before + 7, `on hand of ${sku} went from ${before} to ${after}, expected +7`);
  check(await page.getByRole('heading', { name: 'Low stock' }).count() === 1, 'no low-stock list');
  await shot(page, 'admin-inventory');

  await open(page, '/admin/customers');
  check(await page.locator('tbody tr', { hasText: shopper }).count() >= 0, 'customers page did not render');
  check(await page.locator('tbody tr').count() > 0, 'the customers page lists nobody');
  await shot(page, 'admin-customers');
  await admin.close();
});

await runScenarios();

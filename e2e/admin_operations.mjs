// Headless-browser tests of the admin's operations areas (dashboard, inventory, payments,
// customers, notifications) against a running `mercato up --demo`.
//
//   MERCATO_URL=http://127.0.0.1:8080 ADMIN_EMAIL=… ADMIN_PASSWORD=… SCREENSHOTS=dir node admin_operations.mjs
//
// Places a few orders through the storefront first so the dashboard has data.

import {
  alerts, browser, card, check, fillCheckout, open, run, runScenarios, scenario, shot, signInAdmin, text,
} from './lib/harness.mjs';

const WAIT_MS = 15_000;

/** Puts the first product in stock into the cart and pays with `number`. */
async function placeOrder(page, email, number) {
  await open(page, '/');
  const product = page.locator('li.card.product', { hasText: 'In stock' }).first().locator('a').first();
  check(await product.count() === 1, 'home page shows no product in stock');
  await Promise.all([page.waitForURL(/\/products\//), product.click()]);
  const sku = await page.$$eval('#variant option', (options) => {
    const available = options.find((o) => Number(o.dataset.available) > 0);
    return (available ?? options[0])?.value;
  });
  check(sku, `no variant to choose on ${page.url()}`);
  await page.selectOption('#variant', sku);
  await Promise.all([page.waitForURL(/\/cart$/), page.getByRole('button', { name: 'Add to cart' }).click()]);
  await Promise.all([page.waitForURL(/\/checkout$/), page.getByRole('link', { name: 'Check out' }).click()]);
  await fillCheckout(page, email, number);
  // Paid or declined, the form's POST is answered with a new page.
  await Promise.all([
    page.waitForNavigation({ timeout: WAIT_MS }),
    page.getByRole('button', { name: /^Pay / }).click(),
  ]);
}

let admin = null; // the signed-in admin's page

scenario('a. shoppers place orders (two paid, one declined)', async () => {
  for (const [i, number] of [card.ok, card.ok, card.declined].entries()) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await placeOrder(page, `ops-${run}-${i}@example.com`, number);
    if (number === card.ok) {
      check((await text(page.locator('main'))).includes('Thank you'), `paid order ${i} shows no "Thank you" (${page.url()})`);
    }
    await context.close();
  }
});

scenario('b. the dashboard charts sales, orders and conversion', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  admin = await context.newPage();
  await signInAdmin(admin, '/admin');
  check(await text(admin.locator('h1')) === 'Dashboard', `/admin heading is "${await text(admin.locator('h1'))}"`);
  const dashboardErrors = await alerts(admin);
  check(dashboardErrors === '', `the dashboard shows an error: ${dashboardErrors}`);
  check(await admin.locator('svg.chart').count() >= 3, 'the dashboard shows fewer than 3 <svg> charts');
  check(await admin.locator('svg.chart rect').count() > 0, 'the bar charts have no bars');
  const orders = Number(await text(admin.locator('.total-orders')));
  check(orders >= 2, `dashboard counts ${orders} orders, expected at least the 2 paid ones`);
  check(await admin.locator('.total-revenue').count() > 0, 'the dashboard shows no paid revenue');
  check((await text(admin.locator('.total-conversion'))).endsWith('%'), 'no conversion rate');
  await shot(admin, 'admin-dashboard');
});

scenario('c. inventory: +7 on a demo SKU, its movements, the low-stock list', async () => {
  await open(admin, '/admin/inventory');
  check(await admin.getByRole('heading', { name: 'Low stock' }).count() === 1, 'no low-stock list');
  const stocked = await admin.locator('tr[data-sku]').evaluateAll((trs) =>
    trs.filter((tr) => Number(tr.querySelector('.on-hand')?.textContent) > 0).map((tr) => tr.dataset.sku));
  check(stocked.length > 0, 'the inventory lists no SKU in stock');
  const sku = stocked[0];
  await open(admin, `/admin/inventory/sku?sku=${encodeURIComponent(sku)}`);
  check(await admin.locator('tr.warehouse').count() > 0, `${sku} shows no warehouse`);
  const before = Number(await text(admin.locator('.total-on-hand')));
  const warehouseBefore = Number(await text(admin.locator('tr.warehouse .on-hand').first()));
  await admin.fill('input[name=delta]', '7');
  await admin.selectOption('select[name=reason]', 'receipt');
  await admin.fill('input[name=note]', `e2e ${run}`);
  await Promise.all([admin.waitForURL(/\/admin\/inventory$/), admin.getByRole('button', { name: 'Apply' }).click()]);
  const adjustErrors = await alerts(admin);
  check(adjustErrors === '', `the adjustment failed: ${adjustErrors}`);
  await open(admin, `/admin/inventory/sku?sku=${encodeURIComponent(sku)}`);
  const after = Number(await text(admin.locator('.total-on-hand')));
  check(after === before + 7, `on hand of ${sku} went from ${before} to ${after}, expected +7`);
  const warehouseAfter = Number(await text(admin.locator('tr.warehouse .on-hand').first()));
  check(warehouseAfter === warehouseBefore + 7, `the first warehouse of ${sku} went from ${warehouseBefore} to ${warehouseAfter}`);
  check(await admin.locator('tr.movement', { hasText: `e2e ${run}` }).count() === 1, `the movements of ${sku} do not show the adjustment`);
  await shot(admin, 'admin-inventory');
});

scenario('d. payments: the list, its status filter and the review buttons', async () => {
  await open(admin, '/admin/payments');
  const rows = await admin.locator('tr.payment').count();
  check(rows >= 2, `the payments page lists ${rows} payments, expected the orders' ones`);
  await shot(admin, 'admin-payments');
  await open(admin, '/admin/payments?status=succeeded');
  const statuses = await admin.locator('tr.payment').evaluateAll((trs) => trs.map((tr) => tr.dataset.status));
  check(statuses.length > 0 && statuses.every((s) => s === 'succeeded'), `status=succeeded lists ${statuses.join(', ')}`);
  await open(admin, '/admin/payments?status=requires_review');
  const held = await admin.locator('tr.payment').count();
  check(await admin.getByRole('button', { name: 'Approve' }).count() === held, 'a held payment has no Approve button');
});

scenario('e. customers, with links to their orders', async () => {
  await open(admin, '/admin/customers');
  check(await admin.locator('tbody tr').count() > 0, 'the customers page lists nobody');
  check(await admin.locator('a[href^="/admin/orders?email="]').count() > 0, 'no customer links to their orders');
  await shot(admin, 'admin-customers');
});

scenario('f. notifications: delivery log, a new template and its preview', async () => {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    await open(admin, '/admin/notifications');
    if (await admin.locator('tr.notification').count() > 0) break;
    check(Date.now() < deadline, `no notification in the delivery log within ${WAIT_MS / 1000} s`);
    await admin.waitForTimeout(500);
  }
  const name = `ops-e2e-${run}`;
  await admin.fill('input[name=name]', name);
  await admin.selectOption('select[name=channel]', 'email');
  await admin.fill('input[name=subject]', 'Hello {{ name }}');
  await admin.fill('textarea[name=body]', 'Your order {{ number }} is on its way.');
  await admin.fill('input[name=variables]', 'name, number');
  await Promise.all([admin.waitForURL(/\/admin\/notifications\?edit=/), admin.getByRole('button', { name: 'Save', exact: true }).click()]);
  check(await admin.locator('tr.template', { hasText: name }).count() === 1, `the templates do not list ${name}`);
  check(await admin.inputValue('input[name=name]') === name, 'the saved template is not in the form');
  await admin.fill('textarea[name=data]', '{"name": "Ada", "number": "1001"}');
  await Promise.all([
    admin.waitForURL(/\/admin\/notifications\/preview$/),
    admin.getByRole('button', { name: 'Preview saved version' }).click(),
  ]);
  const preview = await text(admin.locator('.preview'));
  check(preview.includes('Hello Ada') && preview.includes('1001'), `the preview shows "${preview}"`);
  check(await admin.locator('tr.notification').count() > 0, 'the delivery log is empty beside the preview');
  await shot(admin, 'admin-notifications');
});

await runScenarios();

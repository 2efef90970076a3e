// Headless-browser tests of the admin's catalog areas (categories, products and variants,
// promotions) against a running `mercato up --demo`, each change checked in the storefront.
//
//   MERCATO_URL=http://127.0.0.1:8080 ADMIN_EMAIL=… ADMIN_PASSWORD=… SCREENSHOTS=dir node admin_catalog.mjs

import {
  BASE, alerts, browser, check, open, run, runScenarios, scenario, shot, signInAdmin, text, watch,
} from './lib/harness.mjs';

const names = { top: `Kitchen ${run}`, sub: `Mugs ${run}`, product: `Enamel mug ${run}`, sku: `MUG-${run}`.toUpperCase() };
const state = {};
// A category's row; its own text is not enough, as every row's pickers name all categories.
const categoryRow = (page, name) => page.locator(`li.category[data-slug="${name.toLowerCase().replace(/ /g, '-')}"]`);

/** Submits the form holding `button` and waits for the page it leads to. */
async function submit(page, button) {
  await Promise.all([page.waitForLoadState('load'), page.waitForNavigation(), button.click()]);
}

/** The storefront's text of the product, as an anonymous shopper sees it (status and main text). */
async function shopView(slug) {
  const context = await browser.newContext();
  const page = await context.newPage();
  watch(page);
  const response = await page.goto(`${BASE}/products/${slug}`);
  const main = response.ok() ? await text(page.locator('main')) : '';
  await context.close();
  return { status: response.status(), main };
}

scenario('a. categories: a top-level one and one beneath it; a bad position is refused', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  state.admin = await context.newPage();
  const admin = state.admin;
  await signInAdmin(admin, '/admin/categories');
  const create = admin.locator('form[action="/admin/categories"]');
  await create.locator('input[name=name]').fill(names.top);
  await submit(admin, create.getByRole('button', { name: 'Create category' }));
  check(await alerts(admin) === '', `creating a category: ${await alerts(admin)}`);

  await create.locator('input[name=name]').fill(names.sub);
  await create.locator('select[name=parent_id]').selectOption({ label: names.top });
  await create.locator('input[name=position]').fill('first');
  await submit(admin, create.getByRole('button', { name: 'Create category' }));
  check((await alerts(admin)).includes('position'), `a position of "first" was not refused: "${await alerts(admin)}"`);
  check(await categoryRow(admin, names.sub).count() === 0, 'a refused category was stored');

  await create.locator('input[name=name]').fill(names.sub);
  await create.locator('select[name=parent_id]').selectOption({ label: names.top });
  await submit(admin, create.getByRole('button', { name: 'Create category' }));
  const sub = categoryRow(admin, names.sub);
  check(await sub.count() === 1, `${names.sub} is not in the tree`);
  const indent = await sub.evaluate((li) => li.style.marginLeft);
  check(indent && indent !== '0rem', `${names.sub} is not indented beneath ${names.top} (${indent})`);
  state.subId = (await sub.locator('form').first().getAttribute('action')).split('/').pop();
  await shot(admin, 'admin-categories');
});

scenario('b. a product is created as a draft, hidden from the shop until published', async () => {
  const admin = state.admin;
  await open(admin, '/admin/products');
  const create = admin.locator('form[action="/admin/products"][method=post]');
  await create.locator('input[name=title]').fill(names.product);
  await create.locator('textarea[name=description]').fill('Keeps tea warm.');
  await create.locator('textarea[name=images]').fill(`${BASE}/assets/favicon.svg`);
  await create.locator('select[name=category_ids]').selectOption({ label: `— ${names.sub}` });
  await create.locator('input[name=sku]').fill(names.sku);
  await create.locator('input[name=options]').fill('size=M');
  await create.locator('input[name=price]').fill('12.50');
  await submit(admin, create.getByRole('button', { name: 'Create product' }));
  check(/\/admin\/products\/prd_/.test(admin.url()), `creating a product landed on ${admin.url()}: ${await alerts(admin)}`);
  check(await text(admin.locator('.product-status')) === 'draft', 'a new product is not a draft');
  check(await admin.locator('img[src$="favicon.svg"]').count() === 1, 'the image is not shown');
  state.productPage = new URL(admin.url()).pathname;
  state.slug = await admin.locator('input[name=slug]').inputValue();
  check((await shopView(state.slug)).status === 404, 'a draft product is in the shop');

  await submit(admin, admin.getByRole('button', { name: 'Publish' }));
  check(await text(admin.locator('.product-status')) === 'active', `publishing failed: ${await alerts(admin)}`);
  const shop = await shopView(state.slug);
  check(shop.status === 200 && shop.main.includes(names.product) && shop.main.includes('€12.50'),
    `the published product's page shows "${shop.main.slice(0, 200)}"`);
  await open(admin, `/admin/products?status=active&q=${encodeURIComponent(run)}`);
  check(await admin.locator('tr.product', { hasText: names.product }).count() === 1, 'the product is not listed as active');
  await shot(admin, 'admin-products');
});

scenario('c. variants: one added, a price changed, a bad price refused', async () => {
  const admin = state.admin;
  await open(admin, state.productPage);
  const add = admin.locator(`form[action$="/variants"]`);
  await add.locator('input[name=sku]').fill(`${names.sku}-L`);
  await add.locator('input[name=options]').fill('size=L');
  await add.locator('input[name=price]').fill('14');
  await submit(admin, add.getByRole('button', { name: 'Add variant' }));
  check(await admin.locator('form.variant').count() === 2, `the variant was not added: ${await alerts(admin)}`);

  const first = admin.locator(`form.variant[data-sku="${names.sku}"]`);
  await first.locator('input[name="price.EUR"]').fill('ten');
  await submit(admin, first.getByRole('button', { name: 'Save variant' }));
  check((await alerts(admin)).includes('EUR price'), `a price of "ten" was not refused: "${await alerts(admin)}"`);

  await admin.locator(`form.variant[data-sku="${names.sku}"] input[name="price.EUR"]`).fill('11.00');
  await submit(admin, admin.locator(`form.variant[data-sku="${names.sku}"]`).getByRole('button', { name: 'Save variant' }));
  check(await alerts(admin) === '', `saving the price: ${await alerts(admin)}`);
  check(await admin.locator(`form.variant[data-sku="${names.sku}"] input[name="price.EUR"]`).inputValue() === '11.00', 'the new price is not shown');
  const shop = await shopView(state.slug);
  check(shop.main.includes('€11.00') && shop.main.includes('€14.00'), `the shop shows "${shop.main.slice(0, 300)}"`);
  await shot(admin, 'admin-product');
});

scenario('d. promotions: 20 % off the category shows in the shop until switched off', async () => {
  const admin = state.admin;
  await open(admin, '/admin/promotions');
  const create = admin.locator('form[action="/admin/promotions"]');
  await create.locator('input[name=name]').fill(`Mug week ${run}`);
  await create.locator('input[name=value]').fill('lots');
  await submit(admin, create.getByRole('button', { name: 'Create promotion' }));
  check((await alerts(admin)).includes('percentage'), `a value of "lots" was not refused: "${await alerts(admin)}"`);
  check(await admin.locator('tr.promotion', { hasText: `Mug week ${run}` }).count() === 0, 'a refused promotion was stored');

  await create.locator('input[name=name]').fill(`Mug week ${run}`);
  await create.locator('input[name=value]').fill('20');
  await create.locator('select[name=target]').selectOption('categories');
  await create.locator('select[name=category_ids]').selectOption({ label: `— ${names.sub}` });
  await submit(admin, create.getByRole('button', { name: 'Create promotion' }));
  const row = admin.locator('tr.promotion', { hasText: `Mug week ${run}` });
  check(await row.count() === 1, `the promotion is not listed: ${await alerts(admin)}`);
  await shot(admin, 'admin-promotions');
  let shop = await shopView(state.slug);
  check(shop.main.includes('€8.80'), `the shop does not show 20 % off €11.00: "${shop.main.slice(0, 300)}"`);

  await submit(admin, row.getByRole('button', { name: 'Switch off' }));
  const active = await admin.locator('tr.promotion', { hasText: `Mug week ${run}` }).getAttribute('data-active');
  check(active === 'false', `the promotion is still on: ${await alerts(admin)}`);
  shop = await shopView(state.slug);
  check(!shop.main.includes('€8.80'), 'the shop still shows the switched-off promotion');
});

scenario('e. a category with products is not deleted; an archived product leaves the shop', async () => {
  const admin = state.admin;
  await open(admin, '/admin/categories');
  const sub = categoryRow(admin, names.sub);
  await sub.locator('summary').click();
  await submit(admin, sub.getByRole('button', { name: `Delete ${names.sub}` }));
  check(await alerts(admin) !== '', 'deleting a category with a product gave no explanation');
  check(await categoryRow(admin, names.sub).count() === 1, 'the category went away');

  await open(admin, state.productPage);
  await submit(admin, admin.getByRole('button', { name: 'Archive' }));
  check(await text(admin.locator('.product-status')) === 'archived', `archiving failed: ${await alerts(admin)}`);
  check((await shopView(state.slug)).status === 404, 'an archived product is still in the shop');
  await admin.context().close();
});

await runScenarios();

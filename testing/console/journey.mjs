// The console's browser journey (journeys 1, 2 and 5 of JOURNEYS.md), driven
// by playwright-core in Debian's chromium: the operator signs in with the
// superuser token, creates a tenant, sets up an OIDC connection against the
// real test provider, tests it (nothing created), a new user signs in and is
// created just in time (in a second browser context), the operator finds
// them, edits their groups, creates a SCIM token and a webhook (secrets
// shown once), imports a CSV file and sees the user.jit_created event in
// the audit log; then that user, made an admin,
// signs in to the console through the organization's SSO. Screenshots of the main pages go
// to $ARTIFACTS.
//
// Environment: GATEHOUSE_URL, GATEHOUSE_TOKEN, OP_ISSUER, OP_CLIENT_ID,
// OP_CLIENT_SECRET, USER_EMAIL (an account of the provider, in the domain
// TENANT_DOMAIN), ARTIFACTS, CHROMIUM (default /usr/bin/chromium).
// Exits non-zero with a message on the first failed step.
import { mkdirSync } from 'node:fs';
import path from 'node:path';

import { chromium } from 'playwright-core';

const env = (name, dflt) => {
  const v = process.env[name] ?? dflt;
  if (v === undefined) throw new Error(`journey.mjs: ${name} is required`);
  return v;
};
const base = env('GATEHOUSE_URL');
const token = env('GATEHOUSE_TOKEN');
const issuer = env('OP_ISSUER');
const clientId = env('OP_CLIENT_ID');
const clientSecret = env('OP_CLIENT_SECRET');
const userEmail = env('USER_EMAIL');
const domain = env('TENANT_DOMAIN');
const artifacts = env('ARTIFACTS');
mkdirSync(artifacts, { recursive: true });

// Playwright gives every launch a fresh temporary profile (it refuses an
// explicit --user-data-dir outside launchPersistentContext), so no state
// leaks between runs.
const browser = await chromium.launch({
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

let step = 'start';
const log = (s) => { step = s; console.log(`step: ${s}`); };
const shot = (page, name) => page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
function expect(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
}
async function expectText(page, text) {
  await page.getByText(text, { exact: false }).first().waitFor({ timeout: 10000 });
}

try {
  const admin = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await admin.newPage();
  page.setDefaultTimeout(15000);

  log('operator signs in with the superuser token');
  await page.goto(`${base}/console`);
  expect(page.url().endsWith('/console/signin'), `the sign-in page, got ${page.url()}`);
  await shot(page, '01-signin');
  await page.getByLabel('Superuser token').fill('not-the-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expectText(page, 'This is not the superuser token');
  await page.getByLabel('Superuser token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expectText(page, 'Welcome to Gatehouse');
  await shot(page, '02-empty-console');

  log('creates tenant acme');
  await page.getByRole('link', { name: 'Create a tenant' }).first().click();
  await page.getByLabel('Short name').fill('Acme!');
  await page.getByRole('button', { name: 'Create tenant' }).click();
  await expectText(page, 'The short name must be');
  expect(await page.getByLabel('Short name').getAttribute('aria-invalid') === 'true', 'the slug field marked invalid');
  await page.getByLabel('Short name').fill('acme');
  await page.getByLabel('Display name').fill('Acme');
  await page.getByLabel('Email domains').fill(domain);
  await page.getByLabel('Support contact').fill(`it-help@${domain}`);
  await page.getByRole('button', { name: 'Create tenant' }).click();
  await expectText(page, 'What to do next');
  await shot(page, '03-empty-dashboard');

  log('creates groups');
  for (const name of ['Everyone', 'Engineering']) {
    await page.goto(`${base}/console/t/acme/groups`);
    await page.getByLabel('New group name').fill(name);
    await page.getByRole('button', { name: 'Create group' }).click();
    await page.getByRole('link', { name, exact: true }).waitFor();
  }

  log('adds an OIDC connection (discovery checked live)');
  await page.goto(`${base}/console/t/acme/connections`);
  await page.getByRole('link', { name: 'Add connection' }).first().click();
  await page.getByRole('link', { name: /^OpenID Connect/ }).click();
  await page.getByLabel(/^Name/).fill('Test IdP');
  await page.getByLabel('Issuer URL').fill(`${base}/not-an-issuer`);
  await page.getByLabel('Client ID').fill(clientId);
  await page.getByLabel('Client secret').fill(clientSecret);
  await page.getByRole('button', { name: 'Check the issuer and save' }).click();
  // A wrong issuer is caught by the live discovery, inline.
  await page.locator('.field.invalid').first().waitFor();
  await shot(page, '04-oidc-wizard-error');
  await page.getByLabel('Issuer URL').fill(issuer);
  await page.getByLabel('Client secret').fill(clientSecret);
  await page.getByLabel('Scopes').fill('openid email profile groups');
  await page.getByRole('button', { name: 'Check the issuer and save' }).click();
  await expectText(page, 'Give these to your identity provider');
  const redirect = await page.locator('dl.setup code').first().textContent();
  expect(redirect.startsWith(`${base}/sso/oidc/con_`) && redirect.endsWith('/callback'), `a redirect URI to copy, got ${redirect}`);
  await shot(page, '05-connection');

  log('sets the JIT policy: default group Everyone');
  await page.getByRole('checkbox', { name: 'Everyone' }).check();
  await page.getByRole('button', { name: 'Save provisioning policy' }).click();
  await expectText(page, 'Saved.');
  expect(await page.getByRole('checkbox', { name: 'Everyone' }).isChecked(), 'Everyone kept as a default group');

  log('tests the connection in a new tab: claims and preview, nothing created');
  await page.getByLabel(/Test as/).fill(userEmail);
  const [testTab] = await Promise.all([admin.waitForEvent('page'), page.getByRole('button', { name: 'Test connection' }).click()]);
  await testTab.waitForLoadState();
  await testTab.getByText(userEmail).first().waitFor({ timeout: 15000 });
  await shot(testTab, '06-test-connection');
  await testTab.close();
  await page.goto(`${base}/console/t/acme/users`);
  await expectText(page, 'No users match');

  log('a new user signs in (second browser context) and is created just in time');
  const userCtx = await browser.newContext();
  const user = await userCtx.newPage();
  await user.goto(`${base}/t/acme/login?login_hint=${encodeURIComponent(userEmail)}`);
  await user.getByText(userEmail).first().waitFor({ timeout: 15000 });
  await shot(user, '07-user-signed-in');
  await userCtx.close();

  log('finds the user in the users list');
  await page.goto(`${base}/console/t/acme/users`);
  await page.getByLabel('Search').fill(userEmail.split('@')[0]);
  await page.getByLabel('Source').selectOption('jit');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.getByRole('link', { name: userEmail }).waitFor();
  await shot(page, '08-users');
  await page.getByRole('link', { name: userEmail }).click();
  await expectText(page, 'Everyone');

  log('edits their groups');
  await page.getByRole('checkbox', { name: 'Engineering' }).check();
  await page.getByRole('button', { name: 'Save groups' }).click();
  await expectText(page, 'Group memberships saved.');
  await page.locator('ul.memberships li', { hasText: 'Engineering' }).getByText('manual').waitFor();
  await shot(page, '09-user');

  log('creates a SCIM token, shown once');
  await page.getByRole('link', { name: 'SCIM' }).click();
  await page.getByLabel('Name').fill('Okta provisioning');
  await page.getByRole('button', { name: 'Create token' }).click();
  const scimToken = (await page.locator('#new-token').textContent()).trim();
  expect(scimToken.startsWith('gh_scim_'), `a SCIM token, got ${scimToken}`);
  await shot(page, '10-scim-token');
  await page.goto(`${base}/console/t/acme/scim`);
  expect(!(await page.content()).includes(scimToken), 'the token not shown again');
  await expectText(page, 'Okta provisioning');

  log('adds a webhook: its signing secret shown once, not again on reload');
  await page.getByRole('navigation', { name: 'Tenant' }).getByRole('link', { name: 'Webhooks' }).click();
  await page.getByLabel('Endpoint URL').fill('https://hooks.example.com/gatehouse');
  await page.getByRole('checkbox', { name: '*', exact: true }).uncheck();
  await page.getByRole('checkbox', { name: 'user.*', exact: true }).check();
  await page.getByRole('button', { name: 'Add webhook' }).click();
  const whSecret = (await page.locator('#webhook-secret').textContent()).trim();
  expect(whSecret.startsWith('whsec_'), `a webhook secret, got ${whSecret}`);
  await shot(page, '10b-webhook-secret');
  await page.reload();
  await expectText(page, 'Save webhook');
  expect(!(await page.content()).includes(whSecret), 'the webhook secret not shown again');

  log('imports users from a CSV file: checked, previewed, imported');
  await page.getByRole('navigation', { name: 'Tenant' }).getByRole('link', { name: 'Import users' }).click();
  await page.getByLabel('CSV or JSON file').setInputFiles({ name: 'users.csv', mimeType: 'text/csv',
    buffer: Buffer.from(`email,display_name,groups\nzoe@${domain},Zoe Imported,Everyone\n`) });
  await page.getByRole('button', { name: 'Check file' }).click();
  await expectText(page, 'Every row of users.csv is valid');
  await page.getByRole('button', { name: 'Import 1 user', exact: true }).click();
  await expectText(page, 'Import done');
  await shot(page, '10c-import');

  log('sees user.jit_created in the audit log');
  await page.getByRole('link', { name: 'Audit log' }).click();
  await page.getByLabel('Action').fill('user.jit_created');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.locator('td code', { hasText: 'user.jit_created' }).first().waitFor();
  await shot(page, '11-audit');

  log('dashboard chart counts the sign-in');
  await page.getByRole('link', { name: 'Dashboard' }).click();
  await page.locator('svg.chart rect.s2 title', { hasText: ': 1 created just in time' }).first().waitFor({ state: 'attached' });
  await shot(page, '12-dashboard');

  log('keyboard: the skip link is the first stop and leads to the content');
  await page.keyboard.press('Tab');
  expect(await page.evaluate(() => document.activeElement?.className) === 'skip', 'the skip link focused first');

  log('the operator makes Engineering an admin group');
  await page.getByRole('navigation', { name: 'Tenant' }).getByRole('link', { name: 'Settings' }).click();
  await page.getByLabel('Admin groups').fill('Engineering');
  await page.getByRole('button', { name: 'Save' }).click();
  await expectText(page, 'Saved.');
  await admin.close();

  log('the new user, now an admin, signs in to the console through the organization');
  const tenantAdmin = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const ta = await tenantAdmin.newPage();
  ta.setDefaultTimeout(15000);
  await ta.goto(`${base}/console/signin`);
  await ta.getByLabel(/Organization short name/).fill(userEmail);
  await ta.getByRole('button', { name: 'Continue' }).click();
  await ta.getByRole('heading', { name: 'Acme' }).waitFor();
  expect(ta.url().endsWith('/console/t/acme/'), `the tenant dashboard, got ${ta.url()}`);
  expect(await ta.getByRole('link', { name: 'All tenants' }).count() === 0, 'no operator navigation for a tenant admin');
  const other = await ta.goto(`${base}/console/tenants`);
  expect(other.status() === 404, `the operator's pages hidden from a tenant admin, got ${other.status()}`);
  await tenantAdmin.close();
  console.log('OK');
} catch (err) {
  console.error(`FAILED at step "${step}": ${err.stack || err}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

import { test, expect, type Page } from '@playwright/test';
import { startServer, type StartedServer } from '../server';
import { OWNER } from '../server';
import {
  ADMIN_TOKEN,
  WEBHOOK_SECRET,
  baseUrl,
  fillSignIn,
  openHydrated,
  postSignedWebhook,
  refreshUntil,
  signIn,
} from './support';

test('an admin signs in, sees a posted webhook and filters the table by status', async ({ page, request }) => {
  await signIn(page);

  const uuid = `job-${Date.now()}`;
  const eventId = await postSignedWebhook(request, {
    object_type: 'Job',
    object_uuid: uuid,
    event_type: 'status_changed',
    changes: { status: 'Work Order' },
  });

  const row = page.locator(`tr[data-event-id="${eventId}"]`);
  await refreshUntil(page, () => expect(row.locator('.badge')).toHaveText('success', { timeout: 1_000 }));
  await expect(row).toContainText(uuid);
  await expect(row).toContainText('status_changed');
  await expect(page.locator('[data-stat="total"]')).not.toHaveText('0');

  const filter = page.getByLabel('Status');
  await filter.selectOption('failed');
  await expect(page).toHaveURL(/status=failed/);
  await expect(row).toHaveCount(0);

  await filter.selectOption('success');
  await expect(page).toHaveURL(/status=success/);
  await expect(row).toBeVisible();
  await expect(page.locator('tbody .badge').first()).toHaveText('success');

  await page.screenshot({ path: 'screenshots/dashboard.png', fullPage: true });
});

test('a posted webhook changes the dashboard without a reload', async ({ page, request }) => {
  await signIn(page);
  await expect(page.getByText('Live updates: Live')).toBeVisible();
  const total = Number(await page.locator('[data-stat="total"]').textContent());
  const uuid = `job-live-${Date.now()}`;
  const eventId = await postSignedWebhook(request, { object_type: 'Job', object_uuid: uuid, event_type: 'created', changes: { status: 'Quote' } });
  // No reload and no Refresh click: the relay's pipeline events update the page.
  await expect(page.locator(`tr[data-event-id="${eventId}"] .badge`)).toHaveText('success');
  await expect(page.locator('[data-stat="total"]')).toHaveText(String(total + 1));
});

test("the dashboard loads its own bundle and its nav opens the other admin pages, which load the site's", async ({
  page,
}) => {
  const bundles: string[] = [];
  page.on('request', (sent) => sent.url().endsWith('.wasm') && bundles.push(new URL(sent.url()).pathname));
  await signIn(page);
  expect(bundles.length, 'the dashboard loaded a bundle').toBeGreaterThan(0);
  expect(bundles.filter((path) => !path.endsWith('-dashboard_bg.wasm')), "only the dashboard's own").toEqual([]);

  const nav = page.getByRole('navigation', { name: 'Administration' });
  await nav.getByRole('link', { name: 'Destinations' }).click();
  await expect(page).toHaveURL(`${baseUrl()}/admin/destinations`);
  await expect(page.getByRole('heading', { name: 'Destinations', exact: true })).toBeVisible();
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
  expect(bundles.some((path) => /sm8-webhooks\.[0-9a-f]{16}_bg\.wasm$/.test(path)), "the site's bundle").toBe(true);

  await nav.getByRole('link', { name: 'Events' }).click();
  await expect(page).toHaveURL(`${baseUrl()}/admin/webhook-dashboard`);
  await expect(page.getByRole('heading', { name: 'Statistics' })).toBeVisible();
});

test('the table filters by object type, event type and uuid, and pages through older events', async ({ page, request }) => {
  const run = Date.now();
  const company = await postSignedWebhook(request, { object_type: 'Company', object_uuid: `co-${run}`, event_type: 'created', changes: { name: 'Acme' } });
  const jobs: string[] = [];
  for (let n = 0; n < 3; n++) {
    jobs.push(await postSignedWebhook(request, { object_type: 'Job', object_uuid: `job-${run}-${n}`, event_type: 'quote_sent', changes: { status: 'Quote' } }));
  }
  await signIn(page);

  await page.getByLabel('Object').selectOption('company');
  await expect(page).toHaveURL(/object_type=company/);
  await expect(page.locator(`tr[data-event-id="${company}"]`)).toBeVisible();
  await expect(page.locator(`tr[data-event-id="${jobs[0]}"]`)).toHaveCount(0);

  await page.getByRole('link', { name: 'Clear filters' }).click();
  await page.getByLabel('Event type').fill('quote_sent');
  await page.getByLabel('Event type').press('Enter');
  await expect(page).toHaveURL(/event_type=quote_sent/);
  await expect(page.locator(`tr[data-event-id="${jobs[2]}"]`)).toBeVisible();
  await expect(page.locator(`tr[data-event-id="${company}"]`)).toHaveCount(0);

  await page.getByLabel('UUID or event id').fill(`job-${run}-1`);
  await page.getByLabel('UUID or event id').press('Enter');
  await expect(page).toHaveURL(/search=job-/);
  await expect(page.locator('tbody tr')).toHaveCount(1);
  await expect(page.locator(`tr[data-event-id="${jobs[1]}"]`)).toBeVisible();

  await page.getByLabel('Received', { exact: true }).selectOption('15m');
  await expect(page).toHaveURL(/range=15m/);
  await expect(page.locator(`tr[data-event-id="${jobs[1]}"]`)).toBeVisible();

  // 25 events per page: make sure there is more than one page, then follow "Older".
  for (let n = 0; n < 26; n++) {
    await postSignedWebhook(request, { object_type: 'Staff', object_uuid: `staff-${run}-${n}`, event_type: 'updated', changes: { first: `S${n}` } });
  }
  await page.goto(baseUrl() + '/admin/webhook-dashboard?object_type=staff');
  await expect(page.locator('tbody tr')).toHaveCount(25);
  await page.getByRole('link', { name: 'Older →' }).click();
  await expect(page).toHaveURL(/cursor=/);
  await expect(page.getByRole('link', { name: '← Newest' })).toBeVisible();
});

test('an event opens in full: payload, verification, attempts and the mirrored record', async ({ page, request }) => {
  const uuid = `job-detail-${Date.now()}`;
  const eventId = await postSignedWebhook(request, { object_type: 'Job', object_uuid: uuid, event_type: 'updated', changes: { status: 'Completed', job_address: '1 Main St' } });
  await signIn(page);
  await refreshUntil(page, () => expect(page.locator(`tr[data-event-id="${eventId}"] .badge`)).toHaveText('success', { timeout: 1_000 }));
  await page.locator(`tr[data-event-id="${eventId}"] a`).click();
  await expect(page).toHaveURL(new RegExp(`/events/${eventId}`));
  await expect(page.getByRole('heading', { name: new RegExp(uuid) })).toBeVisible();
  await expect(page.locator('[data-field="verification"]')).toHaveText('hmac-sha256');
  await expect(page.getByLabel('Delivery body')).toContainText('1 Main St');
  await expect(page.locator('.timeline .attempt')).toHaveCount(1);
  await expect(page.locator('.timeline .attempt')).toContainText('success');
  await expect(page.getByLabel('Mirrored record', { exact: true })).toContainText('"job_address": "1 Main St"');
  await page.screenshot({ path: 'screenshots/dashboard-detail.png', fullPage: true });
});

test('a test event sent from the dashboard is queued and processed', async ({ page }) => {
  await signIn(page);
  await page.getByLabel('Record UUID').fill('dashboard-test-job');
  await page.getByLabel('Changed fields (JSON)').fill('{not json');
  await page.getByRole('button', { name: 'Send test event' }).click();
  await expect(page.getByRole('alert')).toContainText('JSON object');

  await page.getByLabel('Changed fields (JSON)').fill('{"status": "Quote"}');
  await page.getByRole('button', { name: 'Send test event' }).click();
  const link = page.getByRole('link', { name: /^event / });
  await expect(link).toBeVisible();
  await link.click();
  await expect(page.locator('[data-field="verification"]')).toHaveText('admin-session');
  await refreshUntil(page, () => expect(page.locator('.detail .badge')).toHaveText('success', { timeout: 1_000 }));
});

test('cleanup deletes finished events older than the chosen age', async ({ page, request }) => {
  const eventId = await postSignedWebhook(request, { object_type: 'Job', object_uuid: `job-old-${Date.now()}`, event_type: 'updated', changes: { status: 'Quote' } });
  await signIn(page);
  await refreshUntil(page, () => expect(page.locator(`tr[data-event-id="${eventId}"] .badge`)).toHaveText('success', { timeout: 1_000 }));
  await page.getByLabel('Age in days').fill('30');
  await page.getByRole('button', { name: 'Delete old events' }).click();
  await expect(page.getByText('Deleted 0 events.')).toBeVisible();

  await page.getByLabel('Age in days').fill('0');
  await page.getByRole('button', { name: 'Delete old events' }).click();
  await expect(page.getByText(/Deleted [1-9]\d* events\./)).toBeVisible();
  await expect(page.locator(`tr[data-event-id="${eventId}"]`)).toHaveCount(0);
});

test('a wrong password is refused with a message', async ({ page }) => {
  await openHydrated(page, '/admin/webhook-dashboard');
  await fillSignIn(page, OWNER.email, 'not the password');
  await expect(page.getByRole('alert')).toContainText('do not match');
  await expect(page.getByRole('heading', { name: 'Statistics' })).toHaveCount(0);
});

test('signing out returns to the sign-in form, also after a reload', async ({ page }) => {
  await signIn(page);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByLabel('Password')).toBeVisible();
  await page.reload();
  await expect(page.getByLabel('Password')).toBeVisible();
});

test('the dashboard is usable 375 pixels wide', async ({ page }) => {
  await page.setViewportSize({ width: 375, height: 800 });
  await signIn(page);
  await expect(page.getByLabel('Status')).toBeVisible();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await page.screenshot({ path: 'screenshots/dashboard-375.png', fullPage: true });
});

test.describe('with a ServiceM8 API that cannot be reached', () => {
  let failing: StartedServer;

  test.beforeAll(async () => {
    // Port 9 (discard) refuses connections at once, so every fetch fails and, with no retries, is failed.
    failing = await startServer({
      ADMIN_TOKEN,
      WEBHOOK_SECRET,
      SERVICEM8_API_KEY: 'unreachable',
      SERVICEM8_BASE_URL: 'http://127.0.0.1:9/api_1.0',
      MAX_RETRIES: '0',
      SYNC_INTERVAL_SECONDS: '0',
    });
  });

  test.afterAll(() => {
    failing.process.kill('SIGTERM');
  });

  const signInTo = (page: Page) => signIn(page, failing.url);

  test('a failed event is retried from its page, and all failed events from the dashboard', async ({ page, request }) => {
    const ids: string[] = [];
    for (const n of [1, 2]) {
      ids.push(await postSignedWebhook(request, { object_type: 'Job', object_uuid: `job-fail-${n}`, event_type: 'updated' }, failing.url));
    }
    await signInTo(page);
    await page.getByLabel('Status').selectOption('failed');
    await refreshUntil(page, () => expect(page.locator(`tr[data-event-id="${ids[1]}"] .badge`)).toHaveText('failed', { timeout: 1_000 }));

    await page.locator(`tr[data-event-id="${ids[0]}"] a`).click();
    await expect(page.locator('.detail .badge')).toHaveText('failed');
    await expect(page.locator('.timeline .attempt')).toHaveCount(1);
    await page.getByRole('button', { name: 'Retry this event' }).click();
    await expect(page.getByText('Queued again.')).toBeVisible();
    await refreshUntil(page, () => expect(page.locator('.timeline .attempt')).toHaveCount(2, { timeout: 1_000 }));

    await page.getByRole('link', { name: '← All events' }).click();
    await page.getByRole('button', { name: 'Count failed events' }).click();
    await expect(page.getByText('2 failed events can be retried.')).toBeVisible();
    await page.getByRole('button', { name: 'Retry 2 failed events' }).click();
    await expect(page.getByText('Retried 2 failed events.')).toBeVisible();
  });
});

import { test, expect } from '@playwright/test';
import { OWNER, startServer, type StartedServer } from '../server';
import { ADMIN_TOKEN, WEBHOOK_SECRET, openHydrated, postSignedWebhook, signIn } from './support';

// A server of its own, with no workers (events stay queued) and alerts read five times a second, so that the
// queue-age alert fires a second after a webhook arrives.
let server: StartedServer;

test.beforeAll(async () => {
  server = await startServer({ ADMIN_TOKEN, WEBHOOK_SECRET, WORKERS: '0', ALERT_INTERVAL_MS: '200' });
});

test.afterAll(() => {
  server.process.kill('SIGTERM');
});

test('a firing alert appears live in the banner, and acknowledging it there clears it', async ({ page, request }) => {
  const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const listed = await request.get(`${server.url}/api/webhooks/management?action=alerts`, { headers });
  const queueAge = (await listed.json()).alerts.find((alert: { kind: string }) => alert.kind === 'queue_age');
  const updated = await request.post(`${server.url}/api/webhooks/management`, {
    headers,
    data: { action: 'update_alert', id: queueAge.id, enabled: true, settings: { max_seconds: 1 }, renotifyMinutes: 60 },
  });
  expect(updated.status()).toBe(200);

  await signIn(page, server.url);
  await openHydrated(page, '/admin/alerts', server.url);
  const banner = page.locator('.alert-banner');
  await expect(page.getByRole('heading', { name: 'Alerts' })).toBeVisible();
  await expect(banner).toHaveCount(0);

  // A webhook waits in the queue; the page is told when the alert fires, without a reload.
  await postSignedWebhook(request, { object_type: 'job', object_uuid: 'job-waiting', event_type: 'updated' }, server.url);
  await expect(banner).toBeVisible();
  await expect(banner).toContainText('Queue age');
  await expect(banner).toContainText('the oldest queued event has waited');
  await expect(page.locator('tr[data-alert-kind="queue_age"] .badge').first()).toHaveText('firing');
  await page.screenshot({ path: 'screenshots/alerts-firing.png', fullPage: true });

  await banner.getByRole('button', { name: 'Acknowledge Queue age' }).click();
  await expect(banner).toHaveCount(0);
  const row = page.locator('tr[data-alert-kind="queue_age"]');
  await expect(row).toContainText('acknowledged');
  const history = page.locator('table.alert-history');
  await expect(history.locator('tr[data-transition="fired"]')).toContainText('Queue age');
  await expect(history.locator('tr[data-transition="acknowledged"]')).toContainText(OWNER.email);
  await page.screenshot({ path: 'screenshots/alerts.png', fullPage: true });
});

test('an alert is edited from its page: thresholds checked, destinations chosen', async ({ page }) => {
  await signIn(page, server.url);
  await openHydrated(page, '/admin/alerts', server.url);
  const row = page.locator('tr[data-alert-kind="failure_rate"]');
  await row.getByRole('button', { name: 'Edit Failure rate' }).click();
  const form = page.getByRole('form', { name: 'Edit Failure rate' });
  await form.getByLabel('Thresholds (JSON)').fill('{"percent": 150}');
  await form.getByRole('button', { name: 'Save' }).click();
  await expect(form.getByRole('alert')).toContainText('settings.percent');
  await form.getByLabel('Thresholds (JSON)').fill('{"percent": 25, "window_minutes": 15}');
  await form.getByLabel('Re-notify while firing, every (minutes; 0: never)').fill('0');
  await form.getByRole('button', { name: 'Save' }).click();
  await expect(form).toHaveCount(0);
  await row.getByRole('button', { name: 'Edit Failure rate' }).click();
  await expect(page.getByRole('form', { name: 'Edit Failure rate' }).getByLabel('Thresholds (JSON)')).toHaveValue(/"percent": 25\.0/);
});

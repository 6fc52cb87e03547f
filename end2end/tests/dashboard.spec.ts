import { test, expect } from '@playwright/test';
import { openHydrated, postSignedWebhook, signIn } from './support';

test('an admin signs in, sees a posted webhook and filters the table by status', async ({ page, request }) => {
  await signIn(page);

  const uuid = `job-${Date.now()}`;
  const eventId = await postSignedWebhook(request, {
    object_type: 'Job',
    object_uuid: uuid,
    event_type: 'status_changed',
    changes: { status: 'Work Order' },
  });

  await page.getByRole('button', { name: 'Refresh' }).click();
  const row = page.locator(`tr[data-event-id="${eventId}"]`);
  await expect(row).toBeVisible();
  await expect(row).toContainText(uuid);
  await expect(row).toContainText('status_changed');
  await expect(page.locator('[data-stat="total"]')).not.toHaveText('0');

  const status = (await row.locator('.badge').textContent())!.trim();
  const otherStatus = status === 'failed' ? 'skipped' : 'failed';
  const filter = page.getByLabel('Status');
  await filter.selectOption(otherStatus);
  await expect(page).toHaveURL(new RegExp(`status=${otherStatus}`));
  await expect(row).toHaveCount(0);

  await filter.selectOption(status);
  await expect(page).toHaveURL(new RegExp(`status=${status}`));
  await expect(row).toBeVisible();
  await expect(page.locator('tbody .badge').first()).toHaveText(status);

  await page.screenshot({ path: 'screenshots/dashboard.png', fullPage: true });
});

test('a wrong admin token is refused with a message', async ({ page }) => {
  await openHydrated(page, '/admin/webhook-dashboard');
  await page.getByLabel('Admin token').fill('not-the-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toContainText('not valid');
  await expect(page.getByRole('heading', { name: 'Statistics' })).toHaveCount(0);
});

test('signing out returns to the sign-in form, also after a reload', async ({ page }) => {
  await signIn(page);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByLabel('Admin token')).toBeVisible();
  await page.reload();
  await expect(page.getByLabel('Admin token')).toBeVisible();
});

import { createHmac } from 'node:crypto';
import { expect, type APIRequestContext, type Page } from '@playwright/test';
import { OWNER } from '../server';

export const ADMIN_TOKEN = 'e2e-admin-token';
export const WEBHOOK_SECRET = 'e2e-webhook-secret';

/// The server started by global-setup.ts.
export function baseUrl(): string {
  const url = process.env.SM8_BASE_URL;
  if (!url) throw new Error('SM8_BASE_URL is not set: global-setup.ts did not run');
  return url;
}

/// Opens a page (of the shared server unless `server` names another) and waits until the WASM bundle has
/// hydrated it.
export async function openHydrated(page: Page, path: string, server: string = baseUrl()): Promise<void> {
  await page.goto(server + path);
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
}

/// Signs in to the dashboard of `server` (the shared one unless named) as the instance owner.
export async function signIn(page: Page, server: string = baseUrl()): Promise<void> {
  await page.goto(server + '/admin/webhook-dashboard');
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
  await fillSignIn(page, OWNER.email, OWNER.password);
  await expect(page.getByRole('heading', { name: 'Statistics' })).toBeVisible();
}

export async function fillSignIn(page: Page, email: string, password: string): Promise<void> {
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

/// Posts a seed-format webhook signed with the test secret (to the shared server unless `server` names
/// another) and returns the stored event id.
export async function postSignedWebhook(
  request: APIRequestContext,
  event: { object_type: string; object_uuid: string; event_type: string; changes?: object },
  server: string = baseUrl(),
): Promise<string> {
  const body = JSON.stringify({ timestamp: new Date().toISOString(), changes: {}, ...event });
  const signature = createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex');
  const response = await request.post(server + '/api/webhooks/sm8', {
    data: body,
    headers: { 'content-type': 'application/json', 'x-servicem8-signature': signature },
  });
  expect(response.status()).toBe(200);
  const receipt = await response.json();
  return receipt.event_ids[0];
}

/// Clicks Refresh until `check` passes: for changes the page is not told about (processing after a retry).
export async function refreshUntil(page: Page, check: () => Promise<void>): Promise<void> {
  await expect(async () => {
    await page.getByRole('button', { name: 'Refresh' }).click();
    await check();
  }).toPass({ timeout: 15_000 });
}

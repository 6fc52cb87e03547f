import { execFileSync } from 'node:child_process';
import { test, expect, type Page } from '@playwright/test';
import { BINARY, OWNER, startServer } from '../server';
import { ADMIN_TOKEN, WEBHOOK_SECRET, baseUrl, fillSignIn, openHydrated, signIn } from './support';

const VIEWER = { email: 'viewer@e2e.example', password: 'e2e viewer password' };

/// Runs the CLI against the shared server's database, as an operator would; returns what it printed.
function cli(args: string[], input?: string): string {
  const databaseUrl = process.env.SM8_DATABASE_URL;
  if (!databaseUrl) throw new Error('SM8_DATABASE_URL is not set: global-setup.ts did not run');
  return execFileSync(BINARY, [...args, '--database-url', databaseUrl], {
    env: { ...process.env, PUBLIC_URL: baseUrl() },
    input,
    encoding: 'utf8',
  });
}

/// The URL of a server function, captured from the dashboard's own request while doing `act`.
async function serverFunctionUrl(page: Page, name: string, act: () => Promise<void>): Promise<string> {
  const request = page.waitForRequest((request) => request.url().includes(`/api/${name}`));
  await act();
  return (await request).url();
}

test('the first start prints a setup link that creates the first owner and signs them in', async ({ page }) => {
  const fresh = await startServer({ ADMIN_TOKEN, WEBHOOK_SECRET }, { owner: false });
  try {
    expect(fresh.setupLink).toBeTruthy();
    await page.goto(fresh.setupLink!);
    await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
    await expect(page.getByRole('heading', { name: 'Set up SM8 Webhooks' })).toBeVisible();
    await page.getByLabel('Email').fill('first@e2e.example');
    await page.getByLabel('Password', { exact: true }).fill('first owner password');
    await page.getByLabel('Confirm password').fill('first owner password');
    await page.screenshot({ path: 'screenshots/setup.png', fullPage: true });
    await page.getByRole('button', { name: 'Create account and sign in' }).click();
    await expect(page.getByRole('heading', { name: 'Statistics' })).toBeVisible();

    // The link was for one use.
    await page.context().clearCookies();
    const again = await page.goto(fresh.setupLink!);
    expect(again!.status()).toBe(404);
  } finally {
    fresh.process.kill('SIGTERM');
  }
});

test('a viewer sees no action buttons, and the server refuses the action when forced', async ({ page }) => {
  cli(['user', 'add', '--email', VIEWER.email, '--account', 'default', '--role', 'viewer', '--member-only',
    '--password-stdin'], VIEWER.password + '\n');

  await signIn(page);
  const cleanupUrl = await serverFunctionUrl(page, 'cleanup_events', async () => {
    await page.getByLabel('Age in days').fill('3650');
    await page.getByRole('button', { name: 'Delete old events' }).click();
    await expect(page.getByText(/Deleted \d+ events\./)).toBeVisible();
  });
  await page.getByRole('button', { name: 'Sign out' }).click();

  await fillSignIn(page, VIEWER.email, VIEWER.password);
  await expect(page.getByRole('heading', { name: 'Statistics' })).toBeVisible();
  await expect(page.locator('.badge.role')).toHaveText('viewer');
  for (const name of ['Delete old events', 'Send test event', 'Count failed events']) {
    await expect(page.getByRole('button', { name })).toHaveCount(0);
  }
  await page.screenshot({ path: 'screenshots/dashboard-viewer.png', fullPage: true });

  const status = await page.evaluate(async (url) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ older_than_days: 0 }),
    });
    return response.status;
  }, cleanupUrl);
  expect(status).toBe(403);
});

test('an owner switches between accounts and each shows its own events', async ({ page, request }) => {
  const slug = `second-${Date.now().toString(36)}`;
  cli(['account', 'add', '--slug', slug, '--name', 'Second account']);
  // The running server notices accounts added from the shell within seconds.
  await expect(async () => {
    const answer = await request.get(`${baseUrl()}/api/webhooks/management?action=accounts`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    const slugs = (await answer.json()).accounts.map((account: { slug: string }) => account.slug);
    expect(slugs).toContain(slug);
  }).toPass({ timeout: 15_000 });
  await signIn(page);
  await page.getByLabel('Record UUID').fill('default-account-job');
  await page.getByRole('button', { name: 'Send test event' }).click();
  await expect(page.getByText(/Queued as/)).toBeVisible();

  await page.getByLabel('Account').selectOption(slug);
  await expect(page.locator('.badge.role')).toHaveText('owner');
  await expect(page.getByRole('heading', { name: 'Statistics' })).toBeVisible();
  await expect(page.locator('tr[data-event-id]')).toHaveCount(0);

  // Remembered across visits.
  await openHydrated(page, '/admin/webhook-dashboard');
  await expect(page.getByLabel('Account')).toHaveValue(slug);
  await page.getByLabel('Account').selectOption('default');
  await expect(page.locator('tr[data-event-id]').first()).toBeVisible();
});

test('the admin pages render for the owner', async ({ page }) => {
  await signIn(page);
  for (const [path, heading] of [
    ['/admin/accounts', /account/i],
    ['/admin/users', /users|members/i],
    ['/admin/tokens', /tokens/i],
    ['/admin/audit', /audit/i],
  ] as const) {
    await openHydrated(page, path);
    await expect(page.getByRole('heading', { name: heading }).first()).toBeVisible();
    await page.screenshot({ path: `screenshots${path.replace('/admin', '')}.png`, fullPage: true });
  }
  // The owner's own sign-in is in the audit log.
  await expect(page.getByText(OWNER.email).first()).toBeVisible();
});

test('an owner makes a client portal link on the users page, and it opens the portal once', async ({ page, browser }) => {
  await signIn(page);
  await openHydrated(page, '/admin/users');
  await page.getByLabel('Company UUID').fill('portal-link-company');
  await page.getByRole('button', { name: 'Create portal link' }).click();
  const link = await page.getByLabel('Portal link', { exact: true }).textContent();
  expect(link).toContain('/portal/enter?token=');
  await page.screenshot({ path: 'screenshots/portal-link.png', fullPage: true });

  const client = await browser.newContext();
  const portal = await client.newPage();
  await portal.goto(link!);
  await expect(portal).toHaveURL(`${baseUrl()}/portal`);
  await expect(portal.getByRole('heading', { level: 1, name: 'Your jobs' })).toBeVisible();
  await client.close();
});

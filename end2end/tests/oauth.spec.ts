import { spawn, type ChildProcess } from 'node:child_process';
import { test, expect } from '@playwright/test';
import { BINARY, ROOT, startServer, type StartedServer } from '../server';
import { ADMIN_TOKEN, WEBHOOK_SECRET, signIn } from './support';

/// A simulated ServiceM8 account (`sm8-webhooks mock-servicem8`) and the settings it prints for a server.
interface SimulatedAccount {
  process: ChildProcess;
  env: Record<string, string>;
}

/// Starts the simulated account on a free port; resolves with the SERVICEM8_* settings it prints once listening.
function startSimulatedAccount(): Promise<SimulatedAccount> {
  const child = spawn(BINARY, ['mock-servicem8', '--bind', '127.0.0.1:0', '--change-interval-ms', '0'], {
    cwd: ROOT,
    env: { ...process.env, RUST_LOG: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const wanted = [
    'SERVICEM8_BASE_URL',
    'SERVICEM8_OAUTH_CLIENT_ID',
    'SERVICEM8_OAUTH_CLIENT_SECRET',
    'SERVICEM8_OAUTH_AUTHORIZE_URL',
    'SERVICEM8_OAUTH_TOKEN_URL',
  ];
  return new Promise((resolvePromise, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`the simulated account did not start:\n${output}`)), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const env: Record<string, string> = {};
      for (const match of output.matchAll(/^\s*(SERVICEM8_[A-Z_]+)=(\S+)$/gm)) {
        env[match[1]] = match[2];
      }
      if (wanted.every((name) => env[name])) {
        clearTimeout(timer);
        resolvePromise({ process: child, env });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the simulated account exited with ${code}:\n${output}`));
    });
  });
}

test.describe('with a ServiceM8 OAuth application', () => {
  let account: SimulatedAccount;
  let server: StartedServer;

  test.beforeAll(async () => {
    account = await startSimulatedAccount();
    // Only the OAuth settings: the default account starts without credentials, so connecting is what gives it some.
    server = await startServer({
      ADMIN_TOKEN,
      WEBHOOK_SECRET,
      SYNC_INTERVAL_SECONDS: '0',
      SERVICEM8_BASE_URL: account.env.SERVICEM8_BASE_URL,
      SERVICEM8_OAUTH_CLIENT_ID: account.env.SERVICEM8_OAUTH_CLIENT_ID,
      SERVICEM8_OAUTH_CLIENT_SECRET: account.env.SERVICEM8_OAUTH_CLIENT_SECRET,
      SERVICEM8_OAUTH_AUTHORIZE_URL: account.env.SERVICEM8_OAUTH_AUTHORIZE_URL,
      SERVICEM8_OAUTH_TOKEN_URL: account.env.SERVICEM8_OAUTH_TOKEN_URL,
    });
  });

  test.afterAll(() => {
    server?.process.kill('SIGTERM');
    account?.process.kill('SIGTERM');
  });

  test('an owner connects the account through ServiceM8 and comes back to it connected', async ({ page }) => {
    await signIn(page, server.url);
    await page.goto(server.url + '/admin/accounts');
    await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
    const connection = page.locator('section[aria-labelledby="connection-title"]');
    await expect(connection.locator('[data-field="credential"]')).toContainText('none');

    await connection.getByRole('button', { name: 'Connect ServiceM8' }).click();

    // ServiceM8's consent page, on the simulated account's own origin.
    await expect(page.getByRole('heading', { name: 'Allow access to your ServiceM8 account?' })).toBeVisible();
    expect(page.url().startsWith(account.env.SERVICEM8_OAUTH_AUTHORIZE_URL)).toBe(true);
    await expect(page.getByText('read_jobs', { exact: true })).toBeVisible();
    await page.screenshot({ path: 'screenshots/oauth-consent.png', fullPage: true });
    await page.getByRole('button', { name: 'Allow' }).click();

    // Back through the server's callback to the accounts page, connected.
    const landing = `${server.url}/admin/accounts?account=default&oauth=connected`;
    await expect(page).toHaveURL((url) => url.toString().startsWith(landing));
    await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
    await expect(page.getByRole('status').filter({ hasText: 'ServiceM8 is connected.' })).toBeVisible();
    const back = page.locator('section[aria-labelledby="connection-title"]');
    await expect(back.locator('[data-field="credential"]')).toHaveText('OAuth');
    await expect(back).toContainText('read_jobs read_customers');
    await expect(back.locator('[data-field="oauth-error"]')).toHaveCount(0);
    await page.screenshot({ path: 'screenshots/oauth-connected.png', fullPage: true });
  });

  test('denying on ServiceM8 leaves the account as it was', async ({ page }) => {
    await signIn(page, server.url);
    await page.goto(server.url + '/admin/accounts');
    await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
    const connection = page.locator('section[aria-labelledby="connection-title"]');
    const before = await connection.locator('[data-field="credential"]').textContent();

    await connection.getByRole('button', { name: 'Connect ServiceM8' }).click();
    await page.getByRole('button', { name: 'Deny' }).click();

    await expect(page).toHaveURL(/\/admin\/accounts\?oauth_error=/);
    await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
    await expect(page.getByRole('alert').filter({ hasText: 'ServiceM8 did not connect the account' })).toBeVisible();
    await expect(page.locator('section[aria-labelledby="connection-title"] [data-field="credential"]')).toHaveText(
      before ?? '',
    );
  });
});

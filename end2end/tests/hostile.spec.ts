import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, expect, type Page } from '@playwright/test';
import { ADMIN_TOKEN, baseUrl, signIn } from './support';

/// A page on another port of the same host: the same *site*, so the admin's SameSite=Strict cookie goes along
/// with whatever it sends. It posts a plain form (`text/plain`, the classic way to smuggle a JSON body) to one
/// server function, a form-encoded one, and a `no-cors` fetch with credentials to another server function.
function attackerPage(cleanupUrl: string, testEventUrl: string): string {
  const testEvent = JSON.stringify({
    event: { object_type: 'job', object_uuid: 'csrf-job', event_type: 'updated', changes: { status: 'Hacked' } },
  });
  return `<!DOCTYPE html><html><body>
<iframe name="sink-plain"></iframe><iframe name="sink-form"></iframe>
<form id="plain" method="POST" enctype="text/plain" target="sink-plain" action="${cleanupUrl}">
  <input name='{"older_than_days":0,"x":"' value='"}'>
</form>
<form id="url-encoded" method="POST" target="sink-form" action="${cleanupUrl}">
  <input name="older_than_days" value="0">
</form>
<script>
  document.getElementById('plain').submit();
  document.getElementById('url-encoded').submit();
  fetch(${JSON.stringify(testEventUrl)}, {
    method: 'POST', mode: 'no-cors', credentials: 'include',
    headers: { 'content-type': 'application/json' }, body: ${JSON.stringify(testEvent)},
  }).catch(() => {}).finally(() => { document.title = 'done'; });
</script></body></html>`;
}

async function serveOnAnotherPort(html: () => string): Promise<{ url: string; server: Server }> {
  const server = createServer((_, response) => {
    response.writeHead(200, { 'content-type': 'text/html' });
    response.end(html());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server };
}

/// The URL the dashboard's own request to a server function went to, captured while doing `act`.
async function serverFunctionUrl(page: Page, name: string, act: () => Promise<void>): Promise<string> {
  const request = page.waitForRequest((request) => request.url().includes(`/api/${name}`));
  await act();
  return (await request).url();
}

async function totalEvents(request: import('@playwright/test').APIRequestContext): Promise<number> {
  const response = await request.get(`${baseUrl()}/api/webhooks/management?action=stats`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  expect(response.status()).toBe(200);
  return (await response.json()).total;
}

test('a page on another port cannot clean up or send test events with the signed-in admin cookie', async ({ page, request }) => {
  await signIn(page);
  // The dashboard's own requests work, and tell us where the server functions live.
  const cleanupUrl = await serverFunctionUrl(page, 'cleanup_events', async () => {
    await page.getByLabel('Age in days').fill('3650');
    await page.getByRole('button', { name: 'Delete old events' }).click();
    await expect(page.getByText(/Deleted \d+ events\./)).toBeVisible();
  });
  const testEventUrl = await serverFunctionUrl(page, 'send_test_event', async () => {
    await page.getByLabel('Record UUID').fill('own-test-job');
    await page.getByRole('button', { name: 'Send test event' }).click();
    await expect(page.getByText(/Queued as/)).toBeVisible();
  });
  const before = await totalEvents(request);
  expect(before).toBeGreaterThan(0);

  const answers: number[] = [];
  page.on('response', (response) => {
    if (response.url() === cleanupUrl || response.url() === testEventUrl) answers.push(response.status());
  });
  const attacker = await serveOnAnotherPort(() => attackerPage(cleanupUrl, testEventUrl));
  try {
    await page.goto(attacker.url);
    await expect(page).toHaveTitle('done');
    // Both form posts and the fetch reached the server.
    await expect.poll(() => answers.length).toBe(3);
  } finally {
    attacker.server.close();
  }

  expect(await totalEvents(request)).toBe(before);
  const search = await request.get(`${baseUrl()}/api/webhooks/management?action=events&search=csrf-job`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  expect((await search.json()).events).toHaveLength(0);
  // Each was refused as cross-site (the no-cors fetch's answer is opaque to the page, not to the browser).
  expect(answers).toEqual([403, 403, 403]);
});

test('pages hydrate under a script policy that names a fresh nonce, and an injected script does not run', async ({ page }) => {
  const violations: string[] = [];
  page.on('console', (message) => {
    if (message.text().includes('Content Security Policy')) violations.push(message.text());
  });
  const answer = await page.goto(`${baseUrl()}/admin/webhook-dashboard`);
  expect(answer!.headers()['content-security-policy']).toMatch(
    /script-src 'nonce-[0-9a-f]+' 'strict-dynamic' 'wasm-unsafe-eval'/,
  );
  await signIn(page);
  await page.getByLabel('Record UUID').fill('csp-test-job');
  await page.getByRole('button', { name: 'Send test event' }).click();
  await page.getByRole('link', { name: /^event / }).click();
  await expect(page.locator('#event-title')).toContainText('csp-test-job');
  expect(violations).toEqual([]);

  // A script smuggled into the page as stored data might be (into the head, where the page's own markup is not
  // hydrated), with the server's headers kept: the page still hydrates, and the smuggled script, which has no
  // nonce, is blocked.
  await page.route('**/admin/webhook-dashboard', async (route) => {
    const response = await route.fetch();
    const body = (await response.text()).replace('</head>', '<script>window.__injected = true;</script></head>');
    await route.fulfill({ response, body });
  });
  await page.goto(`${baseUrl()}/admin/webhook-dashboard`);
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
  expect(await page.evaluate(() => (window as unknown as { __injected?: boolean }).__injected)).toBeUndefined();
  expect(violations.length).toBeGreaterThan(0);
});

import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, expect, type Page } from '@playwright/test';
import { BINARY } from '../server';
import { ADMIN_TOKEN, baseUrl, fillSignIn, openHydrated, postSignedWebhook, signIn } from './support';

/// Runs the CLI against the shared server's database, as an operator would.
function cli(args: string[], input?: string): string {
  const databaseUrl = process.env.SM8_DATABASE_URL;
  if (!databaseUrl) throw new Error('SM8_DATABASE_URL is not set: global-setup.ts did not run');
  return execFileSync(BINARY, [...args, '--database-url', databaseUrl], {
    env: { ...process.env, PUBLIC_URL: baseUrl() },
    input,
    encoding: 'utf8',
  });
}

/// Creates a webhook destination from the form of the destinations page, open in `page`.
async function createWebhookDestination(page: Page, name: string, url: string): Promise<void> {
  const form = page.getByRole('form', { name: 'New destination' });
  await form.getByLabel('Name', { exact: true }).fill(name);
  await form.getByLabel('Kind').selectOption('webhook');
  await form.getByLabel('URL').fill(url);
  await form.getByRole('button', { name: 'Create destination' }).click();
  await expect(page.getByText(`Destination ${name} created.`)).toBeVisible();
}

/// One request the receiver took.
interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/// An HTTP server on a free port that records every request and answers 200: the far end of a webhook
/// destination.
async function startReceiver(): Promise<{ url: string; received: Received[]; close: () => Promise<void> }> {
  const received: Received[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({ path: request.url ?? '', headers: request.headers, body: Buffer.concat(chunks).toString('utf8') });
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('{"received":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/// Whether `request` carries a Standard Webhooks signature made with `secret` (`whsec_<base64 key>`, or a
/// secret used as its bytes).
function signedWith(secret: string, request: Received): boolean {
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice('whsec_'.length), 'base64') : Buffer.from(secret);
  const signed = `${request.headers['webhook-id']}.${request.headers['webhook-timestamp']}.${request.body}`;
  const expected = `v1,${createHmac('sha256', key).update(signed).digest('base64')}`;
  return String(request.headers['webhook-signature'] ?? '').split(' ').includes(expected);
}

/// The delivery log of the destination open on the page, reloaded until `check` passes (the live channel
/// refreshes it as attempts end too; reloading keeps the test from depending on when the socket joined).
async function reloadLogUntil(page: Page, check: () => Promise<void>): Promise<void> {
  await expect(async () => {
    await page.getByRole('button', { name: 'Reload log' }).click();
    await check();
  }).toPass({ timeout: 30_000 });
}

test('a rule delivers processed jobs to a webhook destination, signed, and the delivery log shows it', async ({ page, request }) => {
  const receiver = await startReceiver();
  try {
    const run = Date.now().toString(36);
    const destination = `e2e-receiver-${run}`;
    const ruleName = `Forward jobs ${run}`;

    // An event stored before the rule exists, to test the rule against.
    const triedUuid = `job-rule-test-${run}`;
    const triedEvent = await postSignedWebhook(request, {
      object_type: 'Job',
      object_uuid: triedUuid,
      event_type: 'updated',
      changes: { status: 'Work Order' },
    });

    await signIn(page);

    // A webhook destination pointing at the receiver; its signing secret is shown once.
    await openHydrated(page, '/admin/destinations');
    await expect(page.getByRole('heading', { name: 'Destinations', exact: true })).toBeVisible();
    await createWebhookDestination(page, destination, `${receiver.url}/hooks/sm8`);
    // The form is empty again for the next one.
    await expect(page.getByRole('form', { name: 'New destination' }).getByLabel('Name', { exact: true })).toHaveValue('');
    const secret = (await page.locator('.shown-once code.secret').first().textContent())?.trim() ?? '';
    expect(secret.length).toBeGreaterThan(10);
    const row = page.locator('tr[data-destination-id]', { hasText: destination });
    await expect(row).toContainText(`${receiver.url}/hooks/sm8`);
    await expect(row.locator('[data-field="state"]')).toHaveText('active');
    const destinationId = await row.getAttribute('data-destination-id');
    expect(destinationId).toBeTruthy();

    // Its card: a test message reaches the receiver at once.
    await row.getByRole('link', { name: destination, exact: true }).click();
    await expect(page).toHaveURL(new RegExp(`destination=${destinationId}`));
    await expect(page.getByRole('heading', { name: destination, exact: true })).toBeVisible();
    await expect(page.getByText('No deliveries yet')).toBeVisible();
    await page.getByRole('button', { name: 'Send test message' }).click();
    await expect(page.locator('[data-field="test-report"]')).toContainText('Test message delivered');
    await expect(page.locator('[data-field="test-report"]')).toContainText('HTTP 200');
    expect(receiver.received.length).toBe(1);
    expect(signedWith(secret, receiver.received[0])).toBe(true);

    // A rule for processed jobs that delivers to it, tried on the stored event before it is saved.
    await openHydrated(page, '/admin/rules');
    await page.getByRole('button', { name: 'New rule' }).click();
    await page.getByLabel('Rule name').fill(ruleName);
    await page.getByLabel('Stage').selectOption('processed');
    await page.getByRole('checkbox', { name: 'job', exact: true }).check();
    await page.getByLabel('Action 1', { exact: true }).selectOption('deliver');
    await page.locator('.rule-editor').getByRole('checkbox', { name: destination }).check();
    await page.getByLabel('Event id').fill(triedEvent);
    await page.getByRole('button', { name: 'Test against event' }).click();
    const outcome = page.locator('[data-field="rule-test"]');
    await expect(outcome.locator(':scope > p .badge')).toHaveText('matched');
    await expect(outcome).toContainText('at stage processed');
    const preview = outcome.locator('.preview');
    await expect(preview).toHaveCount(1);
    await expect(preview.locator('.badge')).toHaveText('deliver');
    await expect(preview).toContainText(`→ ${destination}`);
    await expect(preview.locator('pre.code').first()).toContainText(triedUuid);
    await page.screenshot({ path: 'screenshots/rule-test.png', fullPage: true });

    // Saving refuses a malformed filter with the server's reason, which names the place.
    await page.getByLabel('Filter (JSON)').fill('{"record.status": {"$equals": "Completed"}}');
    await page.getByRole('button', { name: 'Save rule' }).click();
    await expect(page.locator('.rule-form').getByRole('alert')).toContainText('filter.record.status');

    // The raw JSON shows the same rule; back to the fields, the filter is fixed and the rule saved.
    await page.getByRole('button', { name: 'JSON', exact: true }).click();
    await expect(page.getByLabel('Rule (JSON)')).toHaveValue(new RegExp(`"destinations": \\[\\s*"${destination}"\\s*\\]`));
    await page.getByRole('button', { name: 'Fields', exact: true }).click();
    await page.getByLabel('Filter (JSON)').fill('{}');
    await page.getByRole('button', { name: 'Save rule' }).click();
    await expect(page.getByText(`Saved rule “${ruleName}”.`)).toBeVisible();
    const ruleRow = page.locator('tr[data-rule-id]', { hasText: ruleName });
    await expect(ruleRow).toContainText('processed');
    await expect(ruleRow).toContainText(`deliver → ${destination}`);
    await expect(ruleRow.getByRole('checkbox', { name: `Enabled: ${ruleName}` })).toBeChecked();
    await page.screenshot({ path: 'screenshots/rules.png', fullPage: true });

    // A job processed now is delivered to the receiver, signed, and the log says so.
    const deliveredUuid = `job-rule-delivered-${run}`;
    const deliveredEvent = await postSignedWebhook(request, {
      object_type: 'Job',
      object_uuid: deliveredUuid,
      event_type: 'updated',
      changes: { status: 'Completed' },
    });
    await openHydrated(page, `/admin/destinations?destination=${destinationId}`);
    const delivery = page.locator('table.deliveries tr[data-delivery-id]').first();
    await reloadLogUntil(page, () => expect(delivery.locator('.badge')).toHaveText('delivered', { timeout: 1_000 }));
    await expect(delivery).toContainText(ruleName);
    await expect(delivery).toContainText(deliveredEvent);
    const deliveryId = await delivery.getAttribute('data-delivery-id');

    await expect.poll(() => receiver.received.find((taken) => taken.headers['webhook-id'] === `msg_${deliveryId}`))
      .toBeTruthy();
    const taken = receiver.received.find((taken) => taken.headers['webhook-id'] === `msg_${deliveryId}`)!;
    expect(taken.path).toBe('/hooks/sm8');
    expect(taken.headers['webhook-timestamp']).toMatch(/^\d+$/);
    expect(taken.headers['webhook-signature']).toMatch(/^v1,/);
    expect(signedWith(secret, taken)).toBe(true);
    expect(taken.body).toContain(deliveredUuid);

    // The delivery in full: its attempt and the message it carried.
    await page.getByRole('link', { name: `Details of delivery ${deliveryId}` }).click();
    const detail = page.locator('section.delivery');
    await expect(detail.locator('.timeline .attempt')).toHaveCount(1);
    await expect(detail.locator('.timeline .attempt')).toContainText('delivered');
    await expect(detail.locator('.timeline .attempt')).toContainText('HTTP 200');
    await expect(detail.getByLabel('Message', { exact: true })).toContainText(deliveredUuid);
    await page.screenshot({ path: 'screenshots/destinations.png', fullPage: true });

    // The event's page lists the delivery and links to the destination's log.
    await openHydrated(page, `/admin/webhook-dashboard/events/${deliveredEvent}`);
    const listed = page.locator(`table.event-deliveries tr[data-delivery-id="${deliveryId}"]`);
    await expect(listed).toContainText(destination);
    await expect(listed).toContainText(ruleName);
    await expect(listed.locator('.badge')).toHaveText('delivered');
    await listed.getByRole('link', { name: destination }).click();
    await expect(page).toHaveURL(new RegExp(`destination=${destinationId}.*delivery=${deliveryId}`));
    await expect(page.locator('section.delivery')).toBeVisible();

    // Both pages fit a phone's width.
    await page.setViewportSize({ width: 375, height: 800 });
    for (const path of [`/admin/destinations?destination=${destinationId}`, '/admin/rules']) {
      await openHydrated(page, path);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow).toBeLessThanOrEqual(0);
    }
  } finally {
    await receiver.close();
  }
});

test('a viewer sees rules and destinations without the controls that change them', async ({ page }) => {
  const run = Date.now().toString(36);
  const viewer = { email: `rules-viewer-${run}@e2e.example`, password: 'e2e rules viewer password' };
  cli(['user', 'add', '--email', viewer.email, '--account', 'default', '--role', 'viewer', '--member-only',
    '--password-stdin'], viewer.password + '\n');
  const destination = `viewer-visible-${run}`;
  await signIn(page);
  await openHydrated(page, '/admin/destinations');
  await createWebhookDestination(page, destination, 'http://127.0.0.1:9/never');
  await page.getByRole('button', { name: 'Sign out' }).click();

  await fillSignIn(page, viewer.email, viewer.password);
  await expect(page.locator('.badge.role')).toHaveText('viewer');
  await expect(page.getByRole('heading', { name: 'Destinations', exact: true })).toBeVisible();
  await expect(page.getByRole('form', { name: 'New destination' })).toHaveCount(0);
  await page.getByRole('link', { name: destination, exact: true }).click();
  await expect(page.getByRole('heading', { name: destination, exact: true })).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Delivery log' })).toBeVisible();
  for (const name of ['Edit', 'Send test message', 'Pause', 'Rotate signing secret', 'Retry failed deliveries', 'Delete']) {
    await expect(page.getByRole('button', { name, exact: true })).toHaveCount(0);
  }

  await openHydrated(page, '/admin/rules');
  await expect(page.getByRole('heading', { name: 'Rules', exact: true })).toBeVisible();
  await expect(page.getByRole('button', { name: 'New rule' })).toHaveCount(0);
  await expect(page.locator('table.rules').getByRole('button')).toHaveCount(0);
  await expect(page.locator('table.rules').getByRole('checkbox')).toHaveCount(0);
});

/// Creates a destination of `kind` from the form of the destinations page, open in `page`, filling `fields` by
/// their labels.
async function createDestination(page: Page, name: string, kind: string, fields: Record<string, string>): Promise<void> {
  const form = page.getByRole('form', { name: 'New destination' });
  await form.getByLabel('Name', { exact: true }).fill(name);
  await form.getByLabel('Kind').selectOption(kind);
  for (const [label, value] of Object.entries(fields)) {
    const input = form.getByLabel(label, { exact: true });
    if (label === 'Security') await input.selectOption(value);
    else await input.fill(value);
  }
  await form.getByRole('button', { name: 'Create destination' }).click();
  await expect(page.getByText(`Destination ${name} created.`)).toBeVisible();
}

test('Slack, email and SMS destinations are made from their forms and Slack and SMS test messages arrive in their shapes', async ({ page }) => {
  const receiver = await startReceiver();
  try {
    const run = Date.now().toString(36);
    await signIn(page);
    await openHydrated(page, '/admin/destinations');

    const slack = `e2e-slack-${run}`;
    await createDestination(page, slack, 'slack', { 'Slack incoming webhook URL': `${receiver.url}/services/T0/B0/x` });
    const slackRow = page.locator('tr[data-destination-id]', { hasText: slack });
    await expect(slackRow).toContainText('Slack incoming webhook');
    await slackRow.getByRole('link', { name: slack, exact: true }).click();
    await page.getByRole('button', { name: 'Send test message' }).click();
    await expect(page.locator('[data-field="test-report"]')).toContainText('Test message delivered');
    const toSlack = receiver.received.find((taken) => taken.path === '/services/T0/B0/x')!;
    expect(toSlack.headers['content-type']).toContain('application/json');
    expect(typeof JSON.parse(toSlack.body).text).toBe('string');

    await openHydrated(page, '/admin/destinations');
    const email = `e2e-email-${run}`;
    await createDestination(page, email, 'email', {
      'SMTP host': 'smtp.example.test',
      Port: '2525',
      Security: 'none',
      From: 'SM8 Webhooks <alerts@example.test>',
      To: 'ops@example.test, office@example.test',
    });
    await expect(page.locator('tr[data-destination-id]', { hasText: email }))
      .toContainText('ops@example.test, office@example.test via smtp.example.test');

    const sms = `e2e-sms-${run}`;
    await createDestination(page, sms, 'sms', {
      'API base URL (optional)': receiver.url,
      'Account SID': 'AC0123456789',
      'Auth token': 'e2e-auth-token',
      From: '+61400000000',
      To: '+61400000001',
    });
    const smsRow = page.locator('tr[data-destination-id]', { hasText: sms });
    await expect(smsRow).toContainText('SMS to +61400000001');
    await smsRow.getByRole('link', { name: sms, exact: true }).click();
    await page.getByRole('button', { name: 'Send test message' }).click();
    await expect(page.locator('[data-field="test-report"]')).toContainText('Test message delivered');
    const toTwilio = receiver.received.find((taken) => taken.path === '/2010-04-01/Accounts/AC0123456789/Messages.json')!;
    expect(toTwilio.headers['content-type']).toContain('application/x-www-form-urlencoded');
    expect(toTwilio.headers.authorization).toBe(`Basic ${Buffer.from('AC0123456789:e2e-auth-token').toString('base64')}`);
    const form = new URLSearchParams(toTwilio.body);
    expect([form.get('To'), form.get('From')]).toEqual(['+61400000001', '+61400000000']);
    expect(form.get('Body')?.length).toBeGreaterThan(0);
  } finally {
    await receiver.close();
  }
});

test('rules move up and down the order, and a destination’s delivery log pages by 25', async ({ page, request }) => {
  const receiver = await startReceiver();
  const headers = { authorization: `Bearer ${ADMIN_TOKEN}` };
  const manage = async (data: object) => {
    const response = await request.post(`${baseUrl()}/api/webhooks/management`, { headers, data });
    expect(response.status(), JSON.stringify(await response.json())).toBe(200);
    return response.json();
  };
  const run = Date.now().toString(36);
  const destination = `e2e-paged-${run}`;
  const created = await manage({ action: 'create_destination', name: destination, kind: 'webhook', settings: { url: `${receiver.url}/paged` } });
  const first = await manage({ action: 'create_rule', definition: { name: `First ${run}`, when: { stage: 'processed', object_types: ['job'] },
    filter: { 'event.object_uuid': { $startsWith: `paged-${run}-` } }, actions: [{ type: 'deliver', destinations: [destination] }] } });
  const second = await manage({ action: 'create_rule', definition: { name: `Second ${run}`, when: { stage: 'processed' }, actions: [] } });
  try {
    await signIn(page);
    await openHydrated(page, '/admin/rules');
    const names = () => page.locator('tr[data-rule-id] td:nth-child(2)').allTextContents();
    const order = async () => (await names()).map((name) => name.trim()).filter((name) => name.endsWith(run));
    await expect.poll(order).toEqual([`First ${run}`, `Second ${run}`]);
    await page.getByRole('button', { name: `Move Second ${run} up` }).click();
    await expect.poll(order).toEqual([`Second ${run}`, `First ${run}`]);
    await page.getByRole('button', { name: `Move Second ${run} down` }).click();
    await expect.poll(order).toEqual([`First ${run}`, `Second ${run}`]);

    for (let n = 0; n < 27; n++) {
      await postSignedWebhook(request, { object_type: 'Job', object_uuid: `paged-${run}-${n}`, event_type: 'updated' });
    }
    await expect.poll(() => receiver.received.filter((taken) => taken.path === '/paged').length, { timeout: 30_000 }).toBe(27);
    await openHydrated(page, `/admin/destinations?destination=${created.destination.id}`);
    const rows = page.locator('table.deliveries tr[data-delivery-id]');
    await expect(rows).toHaveCount(25);
    await page.getByRole('link', { name: 'Older →' }).click();
    await expect(rows).toHaveCount(2);
    await expect(page.getByRole('link', { name: 'Older →' })).toHaveCount(0);
    await page.getByRole('link', { name: '← Newest' }).click();
    await expect(rows).toHaveCount(25);
  } finally {
    await manage({ action: 'delete_rule', id: first.id });
    await manage({ action: 'delete_rule', id: second.id });
    await receiver.close();
  }
});

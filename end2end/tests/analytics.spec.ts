import { execFileSync } from 'node:child_process';
import { test, expect, type Page } from '@playwright/test';
import { startServer, type StartedServer } from '../server';
import { ADMIN_TOKEN, WEBHOOK_SECRET, signIn } from './support';

const HOUR = 3_600_000;
const OBJECT_TYPES = ['job', 'company', 'jobactivity'];

/// One finished event of the seeded week.
interface Seeded {
  id: string;
  objectType: string;
  status: 'success' | 'failed' | 'skipped';
  receivedAt: number;
  processedAt: number;
  /// Hours before now it was received (plus half an hour), so that no event sits on a range's edge.
  hoursAgo: number;
}

/// Seven days of finished events, more of them in the last day; none received 23 hours ago, which the
/// 24-hour range includes or not depending on the minute the page is shown.
function week(now: number): Seeded[] {
  const events: Seeded[] = [];
  for (let hoursAgo = 2; hoursAgo <= 160; hoursAgo++) {
    if (hoursAgo === 23) continue;
    const count = 1 + (hoursAgo % 4) + (hoursAgo < 23 ? 3 : 0);
    for (let n = 0; n < count; n++) {
      const receivedAt = now - hoursAgo * HOUR - HOUR / 2 + n * 1_000;
      const mark = hoursAgo + n;
      const status = mark % 9 === 0 ? 'failed' : mark % 7 === 0 ? 'skipped' : 'success';
      events.push({
        id: `seed-${hoursAgo}-${n}`,
        objectType: OBJECT_TYPES[mark % 3],
        status,
        receivedAt,
        processedAt: receivedAt + 40 + ((mark * 97) % 3_000),
        hoursAgo,
      });
    }
  }
  return events;
}

/// Writes `events` (with the attempts of the failed ones) into the server's SQLite database, as if processed.
function seed(databaseUrl: string, events: Seeded[]): void {
  const path = databaseUrl.replace(/^sqlite:\/\//, '');
  const rows = events.map(
    (e) =>
      `('${e.id}', 'default/${e.id}', 'default', 'seed', '${e.objectType}', 'obj-${e.id}', 'updated', 'hmac-sha256', ` +
      `'${e.status}', 1, ${e.receivedAt}, ${e.status === 'failed' ? "'ServiceM8 answered 503: busy'" : 'NULL'}, ` +
      `${e.receivedAt}, ${e.processedAt}, ${e.processedAt})`,
  );
  const failed = events.filter((e) => e.status === 'failed');
  const attempts = failed.map(
    (e, n) =>
      `('${e.id}', 1, ${e.receivedAt}, ${e.processedAt}, 'failed', ${n % 2 ? 503 : 'NULL'}, ` +
      `'${n % 2 ? 'ServiceM8 answered 503: busy' : 'ServiceM8 did not answer in time'}')`,
  );
  const sql = `BEGIN;
INSERT INTO webhook_events (id, dedup_key, account, format, object_type, object_uuid, event_type, verification,
  status, attempts, next_attempt_at, last_error, received_at, processed_at, updated_at) VALUES
${rows.join(',\n')};
INSERT INTO event_attempts (event_id, attempt, started_at, finished_at, outcome, http_status, error) VALUES
${attempts.join(',\n')};
COMMIT;
`;
  execFileSync('sqlite3', [path], { input: sql, encoding: 'utf8' });
}

function figure(page: Page, label: string) {
  return page.locator('.analytics-summary .stat').filter({ has: page.locator('dt', { hasText: label }) });
}

test.describe('analytics over a seeded week', () => {
  let server: StartedServer;
  let events: Seeded[];

  test.beforeAll(async () => {
    events = week(Date.now());
    // Seeded before the server starts: its first rollup pass begins at the oldest finished event.
    server = await startServer({ ADMIN_TOKEN, WEBHOOK_SECRET }, { prepare: (url) => seed(url, events) });
  });

  test.afterAll(() => {
    server?.process.kill('SIGTERM');
  });

  test('the week is charted and switching to 24 hours shows only the last day', async ({ page }) => {
    const lastDay = events.filter((e) => e.hoursAgo < 23);
    const failed = events.filter((e) => e.status === 'failed').length;

    await signIn(page, server.url);
    await page.getByRole('navigation', { name: 'Administration' }).getByRole('link', { name: 'Analytics' }).click();
    await expect(page).toHaveURL(/\/admin\/analytics/);
    await expect(page.getByRole('heading', { name: 'Analytics' })).toBeVisible();

    await page.getByRole('navigation', { name: 'Range' }).getByRole('link', { name: '7 days' }).click();
    await expect(page).toHaveURL(/range=7d/);
    await expect(figure(page, 'Events').locator('dd').first()).toHaveText(String(events.length));
    await expect(figure(page, 'Failed').locator('dd').first()).toHaveText(String(failed));
    await expect(page.getByRole('link', { name: '7 days' })).toHaveAttribute('aria-current', 'page');
    const chart = page.locator('figure', { hasText: 'Events by outcome' });
    await expect(chart.locator('svg rect')).not.toHaveCount(0);
    await expect(chart.locator('.legend')).toContainText('success');
    await expect(chart.locator('.legend')).toContainText('failed');
    const errors = page.locator('figure', { hasText: 'Error classes' });
    await expect(errors).toContainText('timeout');
    await expect(errors).toContainText('http_503');
    await expect(page.locator('figure', { hasText: 'Processing latency' }).locator('polyline')).not.toHaveCount(0);
    await expect(figure(page, 'Events')).toContainText('new in this period');
    await page.screenshot({ path: 'screenshots/analytics.png', fullPage: true });

    await page.getByRole('navigation', { name: 'Range' }).getByRole('link', { name: '24 hours' }).click();
    await expect(page).toHaveURL(/range=24h/);
    await expect(figure(page, 'Events').locator('dd').first()).toHaveText(String(lastDay.length));
    await expect(page.locator('.period')).toContainText('by hour');

    const csvLink = page.getByRole('link', { name: 'Export CSV' });
    await expect(csvLink).toHaveAttribute('href', /format=csv&range=24h&dimension=outcome/);
    const csv = await page.request.get(server.url + (await csvLink.getAttribute('href')));
    expect(csv.status()).toBe(200);
    const lines = (await csv.text()).trim().split('\r\n');
    expect(lines[0]).toMatch(/^bucket_start,failed,skipped,success,processing_p50_ms/);
    expect(lines).toHaveLength(25);

    await page.getByLabel('Count by').selectOption('object_type');
    await expect(page).toHaveURL(/range=24h&dimension=object_type/);
    await expect(page.locator('figure', { hasText: 'Events by object type' }).locator('.legend')).toContainText(
      'jobactivity',
    );
    await page.screenshot({ path: 'screenshots/analytics-24h.png', fullPage: true });
  });
});

import { execFileSync } from 'node:child_process';
import { test, expect, type APIRequestContext, type Page } from '@playwright/test';
import { BINARY } from '../server';
import { ADMIN_TOKEN, baseUrl, postSignedWebhook } from './support';

// Times are shown in the viewer's zone: these tests look from Sydney, 10 hours ahead of UTC in May.
test.use({ timezoneId: 'Australia/Sydney', locale: 'en-AU' });

let serial = 0;
/// Names unique to this run, so tests sharing the server never see each other's records.
function unique(prefix: string): string {
  serial += 1;
  return `${prefix}-${Date.now().toString(36)}-${serial}`;
}

/// A one-time portal link for `company`, made the way an operator makes one.
function portalLink(company: string): string {
  const databaseUrl = process.env.SM8_DATABASE_URL;
  if (!databaseUrl) throw new Error('SM8_DATABASE_URL is not set: global-setup.ts did not run');
  const output = execFileSync(BINARY, ['portal-link', '--company', company, '--database-url', databaseUrl], {
    env: { ...process.env, PUBLIC_URL: baseUrl() },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return output.toString().trim();
}

/// Waits until the pipeline has applied each event to the mirror (no ServiceM8 credentials: payload-only mode).
async function processed(request: APIRequestContext, eventIds: string[]): Promise<void> {
  for (const id of eventIds) {
    await expect(async () => {
      const response = await request.get(`${baseUrl()}/api/webhooks/management?action=event&id=${id}`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      expect(response.status()).toBe(200);
      expect((await response.json()).summary.status).toBe('success');
    }).toPass({ timeout: 15_000 });
  }
}

/// Posts a seed-format change of a job (the fields a portal shows) and returns the event id.
function changeJob(request: APIRequestContext, uuid: string, changes: Record<string, unknown>): Promise<string> {
  return postSignedWebhook(request, { object_type: 'Job', object_uuid: uuid, event_type: 'updated', changes });
}

interface SeededCompany {
  company: string;
  name: string;
  jobs: { uuid: string; number: string }[];
}

/// A company with two jobs, a scheduled visit and a file on the first, all processed.
async function seedCompany(request: APIRequestContext, name: string): Promise<SeededCompany> {
  const company = unique('company');
  const number = () => String(1000 + Math.floor(Math.random() * 9000));
  const jobs = [
    { uuid: unique('job'), number: number() },
    { uuid: unique('job'), number: number() },
  ];
  const ids = [
    await postSignedWebhook(request, {
      object_type: 'Company',
      object_uuid: company,
      event_type: 'created',
      changes: { name },
    }),
    await changeJob(request, jobs[0].uuid, {
      company_uuid: company,
      generated_job_id: jobs[0].number,
      status: 'Work Order',
      job_address: '12 Harbour Street, Sydney NSW 2000',
      job_description: 'Replace the hot water system in the back room and check the pressure valve.',
      date: '2024-05-03 00:00:00',
      total_invoice_amount: '1850.5',
    }),
    await changeJob(request, jobs[1].uuid, {
      company_uuid: company,
      generated_job_id: jobs[1].number,
      status: 'Quote',
      job_address: '3 Ferry Lane, Manly NSW 2095',
      job_description: 'Quote for new kitchen lighting.',
    }),
    await postSignedWebhook(request, {
      object_type: 'JobActivity',
      object_uuid: unique('activity'),
      event_type: 'created',
      changes: {
        job_uuid: jobs[0].uuid,
        start_date: '2024-05-03 08:00:00',
        end_date: '2024-05-03 10:30:00',
        activity_was_scheduled: 1,
      },
    }),
    await postSignedWebhook(request, {
      object_type: 'Attachment',
      object_uuid: unique('attachment'),
      event_type: 'created',
      changes: {
        related_object: 'job',
        related_object_uuid: jobs[0].uuid,
        attachment_name: 'Quote 1850.pdf',
        file_type: '.pdf',
        timestamp: '2024-05-01 04:15:00',
      },
    }),
  ];
  await processed(request, ids);
  return { company, name, jobs };
}

/// Follows a portal link in the browser and waits until the portal is hydrated.
async function enterPortal(page: Page, company: string): Promise<void> {
  await page.goto(portalLink(company));
  await expect(page).toHaveURL(`${baseUrl()}/portal`);
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
}

/// The connection indicator once every topic is joined.
function live(page: Page) {
  return page.locator('.live-indicator[data-status="connected"]');
}

test('a portal user follows a link, sees the jobs and watches them change without a reload', async ({
  page,
  request,
}) => {
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(error.message));
  page.on('console', (message) => message.type() === 'error' && problems.push(message.text()));
  const bundles: string[] = [];
  page.on('request', (sent) => sent.url().endsWith('.wasm') && bundles.push(new URL(sent.url()).pathname));
  const seeded = await seedCompany(request, 'Harbour Cafe');
  const [first, second] = seeded.jobs;
  await enterPortal(page, seeded.company);

  await expect(page.getByRole('heading', { level: 1, name: 'Your jobs' })).toBeVisible();
  await expect(page.locator('.portal-company')).toHaveText('Harbour Cafe');
  await expect(page.locator('.job-card')).toHaveCount(2);
  const firstCard = page.locator(`.job-card[data-job-uuid="${first.uuid}"]`);
  await expect(firstCard).toContainText(`Job ${first.number}`);
  await expect(firstCard).toContainText('Work Order');
  await expect(firstCard).toContainText('12 Harbour Street');
  await expect(firstCard).toContainText('1,850.50');
  // A scheduled day stays that day in any zone.
  await expect(firstCard.locator('time[datetime="2024-05-03T00:00:00Z"]')).toHaveText('3 May 2024');
  await expect(live(page)).toHaveText('Live');
  await expect(page.getByRole('status').filter({ hasText: 'Live' })).toBeVisible();
  // A marker that a reload would wipe out.
  await page.evaluate(() => ((window as unknown as { marker: number }).marker = 42));

  const secondCard = page.locator(`.job-card[data-job-uuid="${second.uuid}"]`);
  await expect(secondCard).toContainText('Quote');
  await changeJob(request, second.uuid, { status: 'Completed', completion_date: '2024-05-06 02:00:00' });
  await expect(secondCard.locator('.status-badge')).toHaveText('Completed');
  await expect(secondCard).toContainText('Completed');
  await page.screenshot({ path: 'screenshots/portal-jobs.png', fullPage: true });

  // Keyboard: focus the job's link and open it with Enter.
  await page.getByRole('link', { name: `Job ${first.number}` }).focus();
  await page.keyboard.press('Enter');
  await expect(page).toHaveURL(`${baseUrl()}/portal/jobs/${first.uuid}`);
  await expect(page.getByRole('heading', { level: 1, name: `Job ${first.number}` })).toBeVisible();
  const visits = page.locator('.visit');
  await expect(visits).toHaveCount(1);
  // 08:00 UTC is 18:00 in Sydney.
  await expect(visits.first().locator('time[datetime="2024-05-03T08:00:00Z"]')).toContainText('6:00');
  await expect(visits.first()).toContainText('Booked');
  await expect(page.locator('.file')).toContainText('Quote 1850.pdf');
  await expect(live(page)).toBeVisible();

  await changeJob(request, first.uuid, { status: 'Completed', completion_date: '2024-05-03 05:45:00' });
  await expect(page.locator('.job-detail .status-badge')).toHaveText('Completed');
  await expect(page.locator('.job-detail time[datetime="2024-05-03T05:45:00Z"]')).toContainText('3:45');
  await postSignedWebhook(request, {
    object_type: 'JobActivity',
    object_uuid: unique('activity'),
    event_type: 'created',
    changes: { job_uuid: first.uuid, start_date: '2024-05-03 04:00:00', activity_was_recorded: 1 },
  });
  await expect(visits).toHaveCount(2);
  await expect(page.locator('.visit').filter({ hasText: 'Done' })).toHaveCount(1);
  expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(42);
  await page.screenshot({ path: 'screenshots/portal-job.png', fullPage: true });
  expect(problems, 'no script errors (hydration, panics)').toEqual([]);
  expect(bundles.length, 'the portal loaded a bundle').toBeGreaterThan(0);
  expect(bundles.filter((path) => !path.endsWith('-portal_bg.wasm')), "only the portal's own bundle").toEqual([]);
});

test("a portal user never sees another company's job, over HTTP or the websocket", async ({ page, request }) => {
  const mine = await seedCompany(request, 'Ferry Plumbing');
  const theirs = await seedCompany(request, 'Other Company Pty Ltd');
  await enterPortal(page, mine.company);
  await expect(page.locator('.job-card')).toHaveCount(2);
  for (const job of theirs.jobs) {
    await expect(page.locator(`.job-card[data-job-uuid="${job.uuid}"]`)).toHaveCount(0);
  }
  await expect(page.getByText('Other Company Pty Ltd')).toHaveCount(0);

  const response = await page.goto(`${baseUrl()}/portal/jobs/${theirs.jobs[0].uuid}`);
  expect(response!.status()).toBe(404);
  await expect(page.getByRole('heading', { level: 1, name: 'Job not found' })).toBeVisible();
  await expect(page.getByText(theirs.jobs[0].number)).toHaveCount(0);
  await page.screenshot({ path: 'screenshots/portal-not-found.png', fullPage: true });

  // The browser's own credentials: joining the other company's topic is refused, our own is allowed.
  const replies = await page.evaluate(
    async ([own, other, otherJob]) => {
      const credentials = await (
        await fetch('/api/realtime/credentials', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{}',
        })
      ).json();
      const socket = new WebSocket(
        `ws://${location.host}/realtime/v1/websocket?apikey=${encodeURIComponent(credentials.apikey)}&vsn=1.0.0`,
      );
      await new Promise((resolve, reject) => {
        socket.onopen = resolve;
        socket.onerror = reject;
      });
      const topics = [`realtime:company:${other}`, `realtime:job:${otherJob}`, `realtime:company:${own}`];
      const replies: Record<string, { status: string; reason?: string }> = {};
      const done = new Promise<void>((resolve) => {
        socket.onmessage = (message) => {
          const frame = JSON.parse(message.data);
          if (frame.event !== 'phx_reply') return;
          replies[frame.topic] = { status: frame.payload.status, reason: frame.payload.response?.reason };
          if (Object.keys(replies).length === topics.length) resolve();
        };
      });
      topics.forEach((topic, index) => {
        const ref = String(index + 1);
        const payload = { config: { broadcast: { self: false } }, access_token: credentials.access_token };
        socket.send(JSON.stringify({ topic, event: 'phx_join', payload, ref, join_ref: ref }));
      });
      await done;
      socket.close();
      return replies;
    },
    [mine.company, theirs.company, theirs.jobs[0].uuid],
  );
  expect(replies[`realtime:company:${theirs.company}`].status).toBe('error');
  expect(replies[`realtime:company:${theirs.company}`].reason).toMatch(/^Unauthorized/);
  expect(replies[`realtime:job:${theirs.jobs[0].uuid}`].status).toBe('error');
  expect(replies[`realtime:company:${mine.company}`].status).toBe('ok');
});

test('a used portal link cannot be used twice', async ({ page, browser }) => {
  const company = unique('company');
  const link = portalLink(company);
  await page.goto(link);
  await expect(page).toHaveURL(`${baseUrl()}/portal`);
  await expect(page.getByRole('heading', { level: 1, name: 'Your jobs' })).toBeVisible();
  await expect(page.getByText('Nothing here yet')).toBeVisible();

  const stranger = await browser.newContext();
  const strangerPage = await stranger.newPage();
  const again = await strangerPage.goto(link);
  expect(again!.status()).toBe(410);
  await expect(strangerPage.getByRole('heading', { name: 'This link cannot be used again' })).toBeVisible();
  await strangerPage.goto(`${baseUrl()}/portal`);
  await expect(strangerPage.getByRole('heading', { level: 1, name: 'Open your portal link' })).toBeVisible();
  await stranger.close();
});

test('the portal works at 375 px wide and signing out ends the session', async ({ page, request }) => {
  await page.setViewportSize({ width: 375, height: 812 });
  const seeded = await seedCompany(request, 'Narrow Screen Electrical');
  await enterPortal(page, seeded.company);
  await expect(page.locator('.job-card')).toHaveCount(2);
  await expect(live(page)).toBeVisible();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow).toBeLessThanOrEqual(0);
  await page.screenshot({ path: 'screenshots/portal-375.png', fullPage: true });

  await page.getByRole('link', { name: `Job ${seeded.jobs[0].number}` }).click();
  await expect(page.locator('.visit')).toHaveCount(1);
  await expect(live(page)).toBeVisible();
  const detailOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(detailOverflow).toBeLessThanOrEqual(0);
  await page.screenshot({ path: 'screenshots/portal-job-375.png', fullPage: true });

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'You have signed out' })).toBeVisible();
  await page.goto(`${baseUrl()}/portal`);
  await expect(page.getByRole('heading', { level: 1, name: 'Open your portal link' })).toBeVisible();
});

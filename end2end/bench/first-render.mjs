// The dashboard's first render in Chromium, for `sm8-webhooks bench`: the time from navigation start to the
// hydrated page (the WASM bundle sets body[data-hydrated="true"]) and to the first contentful paint, over several
// loads, each in a fresh browser context (nothing cached). One uncounted load first warms the server.
//
// Usage: node end2end/bench/first-render.mjs URL [LOADS]
// Prints: {"hydrated_ms":[...],"first_contentful_paint_ms":[...]}
import { chromium } from '@playwright/test';

const [url, loadsArgument] = process.argv.slice(2);
if (!url) {
  console.error('usage: node end2end/bench/first-render.mjs URL [LOADS]');
  process.exit(2);
}
const loads = Number(loadsArgument ?? 5);

// The same browser settings as the browser tests (playwright.config.ts).
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
  ],
});

try {
  const hydrated = [];
  const painted = [];
  for (let load = 0; load <= loads; load++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    // Runs before any script of the page: notes the moment the marker appears, relative to navigation start.
    await page.addInitScript(() => {
      const note = () => {
        if (window.__hydratedAt === undefined && document.body?.getAttribute('data-hydrated') === 'true') {
          window.__hydratedAt = performance.now();
        }
      };
      new MutationObserver(note).observe(document, {
        subtree: true,
        childList: true,
        attributes: true,
        attributeFilter: ['data-hydrated'],
      });
    });
    await page.goto(url, { waitUntil: 'commit' });
    await page.waitForSelector('body[data-hydrated="true"]', { state: 'attached', timeout: 30_000 });
    const timing = await page.evaluate(() => ({
      hydrated: window.__hydratedAt,
      painted: performance.getEntriesByName('first-contentful-paint')[0]?.startTime,
    }));
    if (load > 0) {
      hydrated.push(timing.hydrated);
      if (typeof timing.painted === 'number') painted.push(timing.painted);
    }
    await context.close();
  }
  console.log(JSON.stringify({ hydrated_ms: hydrated, first_contentful_paint_ms: painted }));
} finally {
  await browser.close();
}

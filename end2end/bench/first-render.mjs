// A page's first render in Chromium, for `sm8-webhooks bench`: the time from navigation start to the hydrated
// page (the WASM bundle sets body[data-hydrated="true"]) and to the first contentful paint, over several loads,
// each in a fresh browser context (nothing cached). One uncounted load first warms the server.
//
// --throttle loads the page as a phone on a building site would: the CPU slowed 4× and the network of Chrome's
// "Fast 3G" preset as the performance issue states it (1.6 Mbit/s down, 750 kbit/s up, 150 ms latency).
// --cookie NAME=VALUE is set on 127.0.0.1 in each context first (a portal session).
//
// Usage: node end2end/bench/first-render.mjs URL [LOADS] [--throttle] [--cookie NAME=VALUE]
// Prints: {"hydrated_ms":[...],"first_contentful_paint_ms":[...]}
import { chromium } from '@playwright/test';

const positional = [];
let throttle = false;
let cookie;
const argv = process.argv.slice(2);
for (let index = 0; index < argv.length; index++) {
  if (argv[index] === '--throttle') throttle = true;
  else if (argv[index] === '--cookie') cookie = argv[++index];
  else positional.push(argv[index]);
}
const [url, loadsArgument] = positional;
if (!url || (cookie !== undefined && !cookie.includes('='))) {
  console.error('usage: node end2end/bench/first-render.mjs URL [LOADS] [--throttle] [--cookie NAME=VALUE]');
  process.exit(2);
}
const loads = Number(loadsArgument ?? 5);
const FAST_3G = {
  offline: false,
  latency: 150,
  downloadThroughput: (1.6 * 1000 * 1000) / 8,
  uploadThroughput: (750 * 1000) / 8,
};

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
    if (cookie !== undefined) {
      const split = cookie.indexOf('=');
      await context.addCookies([
        { name: cookie.slice(0, split), value: cookie.slice(split + 1), url: new URL(url).origin },
      ]);
    }
    const page = await context.newPage();
    if (throttle) {
      const session = await context.newCDPSession(page);
      await session.send('Network.enable');
      await session.send('Network.emulateNetworkConditions', FAST_3G);
      await session.send('Emulation.setCPUThrottlingRate', { rate: 4 });
    }
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
    await page.waitForSelector('body[data-hydrated="true"]', { state: 'attached', timeout: 60_000 });
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

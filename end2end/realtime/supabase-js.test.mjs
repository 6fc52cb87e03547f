// The real @supabase/realtime-js client (with `ws` as its transport on Node 20) against the release server, under
// both serializers: an existing supabase-js frontend pointed at this server must work unchanged.
// Run by `make test-realtime-js` (node --test).
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { RealtimeClient } from '@supabase/realtime-js';
import WebSocket from 'ws';

import { startServer } from './server.mjs';

const ANON_KEY = 'realtime-js-anon-key';
const JWT_SECRET = 'realtime-js-jwt-secret';
const WEBHOOK_SECRET = 'realtime-js-webhook-secret';
const ADMIN_TOKEN = 'realtime-js-admin-token';
/** How long any one expected event may take. */
const WAIT_MS = 10_000;

let server;
const clients = [];

before(async () => {
  server = await startServer({ REALTIME_ANON_KEY: ANON_KEY, JWT_SECRET, WEBHOOK_SECRET, ADMIN_TOKEN });
});

after(async () => {
  for (const client of clients) client.disconnect();
  server?.process.kill('SIGTERM');
});

/** An HS256 access token as the server mints them (`sm8-webhooks token`), signed here with node:crypto. */
function accessToken(claims, ttlSeconds = 3600) {
  const now = Math.floor(Date.now() / 1000);
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const unsigned = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode({ ...claims, iat: now, exp: now + ttlSeconds })}`;
  return `${unsigned}.${createHmac('sha256', JWT_SECRET).update(unsigned).digest('base64url')}`;
}

/** A realtime-js client as supabase-js builds it: `{url}/realtime/v1`, the anon key as `apikey`. */
function connect(vsn, token = accessToken({ role: 'admin' })) {
  const client = new RealtimeClient(`${server.url.replace(/^http/, 'ws')}/realtime/v1`, {
    params: { apikey: ANON_KEY },
    transport: WebSocket,
    accessToken: async () => token,
    vsn,
  });
  clients.push(client);
  return client;
}

/** Resolves with the first value `register(resolve)` delivers, or fails after WAIT_MS. */
function eventually(what, register) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT_MS);
    register((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/**
 * Subscribes and resolves with `{ status, error }` once the status is `until`. realtime-js builds its first join
 * before its async `accessToken` callback has answered, so that join carries no token and a private topic refuses
 * it; the client rejoins a second later with the token. Waiting for SUBSCRIBED covers exactly what a supabase-js
 * frontend goes through.
 */
function subscribe(channel, until = 'SUBSCRIBED') {
  return eventually(`${until} on ${channel.topic}`, (done) =>
    channel.subscribe((status, error) => {
      if (status === until) done({ status, error });
    }),
  );
}

async function postSignedWebhook(event) {
  const body = JSON.stringify({ timestamp: new Date().toISOString(), ...event });
  const signature = createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex');
  const response = await fetch(`${server.url}/api/webhooks/sm8`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-servicem8-signature': signature },
    body,
  });
  assert.equal(response.status, 200, await response.text());
}

for (const vsn of ['1.0.0', '2.0.0']) {
  describe(`@supabase/realtime-js with vsn ${vsn}`, () => {
    test('subscribes to jobs and receives the update a signed webhook causes', async () => {
      const client = connect(vsn);
      const jobUuid = `job-${randomUUID()}`;
      const channel = client.channel('jobs');
      const update = eventually('the webhook_update broadcast', (done) =>
        channel.on('broadcast', { event: 'webhook_update' }, (message) => {
          if (message.payload.object_uuid === jobUuid) done(message);
        }),
      );
      assert.equal((await subscribe(channel)).status, 'SUBSCRIBED');

      await postSignedWebhook({
        object_type: 'Job',
        object_uuid: jobUuid,
        event_type: 'status_changed',
        changes: { status: 'Completed', company_uuid: 'company-js' },
      });
      const { payload } = await update;
      assert.equal(payload.type, 'job_update');
      assert.equal(payload.event_type, 'status_changed');
      assert.equal(payload.changes.status, 'Completed');
      assert.equal(payload.company_uuid, 'company-js');
      assert.equal(typeof payload.event_id, 'string');
      assert.ok(Number.isInteger(payload.offset) && payload.offset > 0, `offset ${payload.offset}`);
      await client.removeChannel(channel);
    });

    test('a broadcast sent with ack resolves ok and reaches a second client', async () => {
      const topic = `room-${randomUUID()}`;
      const receiver = connect(vsn).channel(topic);
      const received = eventually('the broadcast on the second client', (done) =>
        receiver.on('broadcast', { event: 'hello' }, (message) => done(message)),
      );
      assert.equal((await subscribe(receiver)).status, 'SUBSCRIBED');
      const sender = connect(vsn).channel(topic, { config: { broadcast: { ack: true, self: false } } });
      assert.equal((await subscribe(sender)).status, 'SUBSCRIBED');

      const answer = await sender.send({ type: 'broadcast', event: 'hello', payload: { n: 1, from: vsn } });
      assert.equal(answer, 'ok');
      const message = await received;
      assert.deepEqual(message.payload, { n: 1, from: vsn });
      assert.equal(message.event, 'hello');
    });

    test('presence tracked by one client is synced to and joins on the other', async () => {
      const topic = `lobby-${randomUUID()}`;
      const watcher = connect(vsn).channel(topic, { config: { presence: { key: 'bob' } } });
      const joined = eventually('the presence join of alice', (done) =>
        watcher.on('presence', { event: 'join' }, ({ key, newPresences }) => {
          if (key === 'alice') done(newPresences);
        }),
      );
      const synced = eventually('a presence sync with alice', (done) =>
        watcher.on('presence', { event: 'sync' }, () => {
          const state = watcher.presenceState();
          if (state.alice) done(state);
        }),
      );
      assert.equal((await subscribe(watcher)).status, 'SUBSCRIBED');
      const alice = connect(vsn).channel(topic, { config: { presence: { key: 'alice' } } });
      assert.equal((await subscribe(alice)).status, 'SUBSCRIBED');

      assert.equal(await alice.track({ name: 'Alice' }), 'ok');
      const presences = await joined;
      assert.equal(presences[0].name, 'Alice');
      const state = await synced;
      assert.equal(state.alice[0].name, 'Alice');
    });

    test("a portal token is refused on another company's topic", async () => {
      const client = connect(vsn, accessToken({ role: 'portal', company_uuid: 'company-a' }));
      // As supabase-js does once signed in: the token is known before the joins, so each carries it.
      await client.setAuth();
      const own = client.channel('company:company-a');
      assert.equal((await subscribe(own)).status, 'SUBSCRIBED');
      const other = client.channel('company:company-b');
      const { error } = await subscribe(other, 'CHANNEL_ERROR');
      assert.match(String(error?.message ?? error), /Unauthorized: this portal token cannot join company:company-b/);
      await client.removeChannel(other);
    });
  });
}

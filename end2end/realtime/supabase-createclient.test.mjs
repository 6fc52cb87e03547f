// `createClient` from @supabase/supabase-js, the way apps use it, against the release server under both
// serializers: broadcast, presence, postgres_changes with filters, token refresh, a token minted by `jose`
// without `iat`, and the seed's server-side broadcast. Run by `make test-realtime-js` (node --test).
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { createClient } from '@supabase/supabase-js';
import { SignJWT } from 'jose';
import WebSocket from 'ws';

import { startServer } from './server.mjs';

const ANON_KEY = 'supabase-js-anon-key';
const JWT_SECRET = 'supabase-js-jwt-secret';
const WEBHOOK_SECRET = 'supabase-js-webhook-secret';
/** How long any one expected event may take. */
const WAIT_MS = 10_000;

let server;
const clients = [];

before(async () => {
  server = await startServer({ REALTIME_ANON_KEY: ANON_KEY, JWT_SECRET, WEBHOOK_SECRET });
});

after(async () => {
  for (const client of clients) await client.removeAllChannels();
  server?.process.kill('SIGTERM');
});

/** An HS256 token minted by an independent library: no `iat`, as `jose` leaves it out unless asked. */
async function joseToken(claims, expiresIn = '1h') {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(JWT_SECRET));
}

/** A supabase-js client of this server with `key` as its key, signed in to realtime with `token` if given. */
async function supabase(vsn, { key = ANON_KEY, token } = {}) {
  const client = createClient(server.url, key, {
    auth: { persistSession: false, autoRefreshToken: false },
    realtime: { transport: WebSocket, vsn },
  });
  if (token) await client.realtime.setAuth(token);
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

function subscribed(channel) {
  return eventually(`SUBSCRIBED on ${channel.topic}`, (done) =>
    channel.subscribe((status) => {
      if (status === 'SUBSCRIBED') done(status);
    }),
  );
}

async function postSignedWebhook(objectUuid, changes, second) {
  const body = JSON.stringify({
    object_type: 'Job',
    object_uuid: objectUuid,
    event_type: 'updated',
    timestamp: new Date(Date.UTC(2024, 0, 1, 0, 0, second)).toISOString(),
    changes,
  });
  const signature = createHmac('sha256', WEBHOOK_SECRET).update(body).digest('hex');
  const response = await fetch(`${server.url}/api/webhooks/sm8`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-servicem8-signature': signature },
    body,
  });
  assert.equal(response.status, 200, await response.text());
}

for (const vsn of ['1.0.0', '2.0.0']) {
  describe(`createClient from @supabase/supabase-js with vsn ${vsn}`, () => {
    test('a broadcast sent with ack reaches another client', async () => {
      const admin = await joseToken({ role: 'admin' });
      const topic = `room-${randomUUID()}`;
      const receiver = (await supabase(vsn, { token: admin })).channel(topic);
      const received = eventually('the broadcast', (done) =>
        receiver.on('broadcast', { event: 'hello' }, (message) => done(message)),
      );
      await subscribed(receiver);
      const sender = (await supabase(vsn, { token: admin })).channel(topic, { config: { broadcast: { ack: true } } });
      await subscribed(sender);
      assert.equal(await sender.send({ type: 'broadcast', event: 'hello', payload: { from: vsn } }), 'ok');
      assert.deepEqual((await received).payload, { from: vsn });
    });

    test('presence tracked by one client joins on the other', async () => {
      const admin = await joseToken({ role: 'admin' });
      const topic = `lobby-${randomUUID()}`;
      const watcher = (await supabase(vsn, { token: admin })).channel(topic, { config: { presence: { key: 'bob' } } });
      const joined = eventually('the join of alice', (done) =>
        watcher.on('presence', { event: 'join' }, ({ key, newPresences }) => {
          if (key === 'alice') done(newPresences);
        }),
      );
      await subscribed(watcher);
      const alice = (await supabase(vsn, { token: admin })).channel(topic, { config: { presence: { key: 'alice' } } });
      await subscribed(alice);
      assert.equal(await alice.track({ name: 'Alice' }), 'ok');
      assert.equal((await joined)[0].name, 'Alice');
      assert.equal(watcher.presenceState().alice[0].name, 'Alice');
    });

    test('postgres_changes deliver job rows to the bindings whose filters match', async () => {
      const client = await supabase(vsn, { token: await joseToken({ role: 'admin' }) });
      const jobUuid = `job-${randomUUID()}`;
      const seen = { inserts: [], completed: [] };
      const inserted = eventually('the INSERT', (done) => {
        seen.insertDone = done;
      });
      const completed = eventually('the UPDATE to Completed', (done) => {
        seen.completedDone = done;
      });
      const channel = client
        .channel(`watch-${randomUUID()}`)
        .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'jobs', filter: `uuid=eq.${jobUuid}` },
          (change) => seen.insertDone(change))
        .on('postgres_changes',
          { event: 'UPDATE', schema: 'public', table: 'sm8_jobs', filter: 'status=in.(Completed,Invoiced)' },
          (change) => {
            if (change.new.uuid === jobUuid) seen.completedDone(change);
          });
      await subscribed(channel);

      await postSignedWebhook(jobUuid, { status: 'Quote', company_uuid: 'company-js' }, 1);
      await postSignedWebhook(jobUuid, { status: 'Work Order' }, 2);
      await postSignedWebhook(jobUuid, { status: 'Completed' }, 3);
      const insert = await inserted;
      assert.equal(insert.eventType, 'INSERT');
      assert.equal(insert.schema, 'public');
      assert.equal(insert.table, 'sm8_jobs');
      assert.equal(insert.new.status, 'Quote');
      assert.equal(insert.new.active, 1);
      assert.equal(insert.new.record.company_uuid, 'company-js');
      const update = await completed;
      assert.equal(update.eventType, 'UPDATE');
      assert.equal(update.new.status, 'Completed');
      assert.equal(update.old.status, 'Work Order', 'the Work Order update did not match the filter');
    });

    test('a refreshed token keeps the channel and a token minted by jose without iat is accepted', async () => {
      const client = await supabase(vsn, { token: await joseToken({ role: 'viewer' }, '1h') });
      const topic = `refresh-${randomUUID()}`;
      const channel = client.channel(topic);
      const received = eventually('the broadcast after the refresh', (done) =>
        channel.on('broadcast', { event: 'after' }, (message) => done(message)),
      );
      await subscribed(channel);
      await client.realtime.setAuth(await joseToken({ role: 'viewer' }, '2h'));
      const admin = (await supabase(vsn, { token: await joseToken({ role: 'admin' }) })).channel(topic);
      await subscribed(admin);
      await admin.send({ type: 'broadcast', event: 'after', payload: { ok: true } });
      assert.deepEqual((await received).payload, { ok: true });
      assert.equal(channel.state, 'joined');
    });

    test("the seed's server-side example broadcasts webhook_update to jobs", async () => {
      const browser = (await supabase(vsn, { token: await joseToken({ role: 'viewer' }) })).channel('jobs');
      const marker = randomUUID();
      const received = eventually('the server-side broadcast', (done) =>
        browser.on('broadcast', { event: 'webhook_update' }, ({ payload }) => {
          if (payload.marker === marker) done(payload);
        }),
      );
      await subscribed(browser);
      // A backend holds a service key: here an admin token as the key itself, as Supabase's service role key is.
      const backend = await supabase(vsn, { key: await joseToken({ role: 'admin' }) });
      const payload = { type: 'job_update', object_uuid: 'job-1', marker };
      const answer = await backend.channel('jobs').send({ type: 'broadcast', event: 'webhook_update', payload });
      assert.equal(answer, 'ok');
      assert.equal((await received).object_uuid, 'job-1');
    });
  });
}

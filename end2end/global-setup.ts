import { startServer } from './server';
import { ADMIN_TOKEN, WEBHOOK_SECRET } from './tests/support';

/// Starts the server the tests share (no ServiceM8 credentials: events are applied from their payloads);
/// tests find it through SM8_BASE_URL and its database through SM8_DATABASE_URL.
export default async function globalSetup(): Promise<() => Promise<void>> {
  const server = await startServer({ ADMIN_TOKEN, WEBHOOK_SECRET });
  process.env.SM8_BASE_URL = server.url;
  process.env.SM8_DATABASE_URL = server.databaseUrl;
  return async () => {
    server.process.kill('SIGTERM');
  };
}

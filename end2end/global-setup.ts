import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ADMIN_TOKEN, WEBHOOK_SECRET } from './tests/support';

const ROOT = resolve(__dirname, '..');
const BINARY = join(ROOT, 'target', 'release', 'sm8-webhooks');

/// Starts the server on a free port with a fresh database; tests find it through SM8_BASE_URL.
export default async function globalSetup(): Promise<() => Promise<void>> {
  if (!existsSync(BINARY)) {
    throw new Error(`${BINARY} is missing: run \`make build\` first`);
  }
  const data = mkdtempSync(join(tmpdir(), 'sm8-e2e-'));
  const server = spawn(BINARY, ['serve', '--bind', '127.0.0.1:0'], {
    cwd: ROOT,
    env: {
      ...process.env,
      DATABASE_URL: `sqlite://${join(data, 'sm8.db')}`,
      ADMIN_TOKEN,
      WEBHOOK_SECRET,
      RUST_LOG: 'warn',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  process.env.SM8_BASE_URL = await announcedAddress(server);
  return async () => {
    server.kill('SIGTERM');
  };
}

/// Resolves with the URL the server prints once it is listening.
function announcedAddress(server: ChildProcess): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), 30_000);
    server.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = output.match(/serving on (http:\/\/[\d.]+:\d+)/);
      if (match) {
        clearTimeout(timer);
        resolvePromise(match[1]);
      }
    });
    server.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${output}`)));
  });
}

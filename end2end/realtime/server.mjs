// Starts the release server for the Node realtime tests, as end2end/server.ts does for Playwright: a free port,
// a fresh SQLite database, no ServiceM8 credentials (events are applied from their payloads).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BINARY = join(ROOT, 'target', 'release', 'sm8-webhooks');

/** Starts `sm8-webhooks serve` with `env` added; resolves with `{ url, process }` once it listens. */
export async function startServer(env) {
  if (!existsSync(BINARY)) {
    throw new Error(`${BINARY} is missing: run \`make build\` first`);
  }
  const data = mkdtempSync(join(tmpdir(), 'sm8-realtime-js-'));
  const child = spawn(BINARY, ['serve', '--bind', '127.0.0.1:0'], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: `sqlite://${join(data, 'sm8.db')}`, RUST_LOG: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise((resolveUrl, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), 30_000);
    child.stdout.on('data', (chunk) => {
      output += chunk.toString();
      const match = output.match(/serving on (http:\/\/[\d.]+:\d+)/);
      if (match) {
        clearTimeout(timer);
        resolveUrl(match[1]);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${output}`));
    });
  });
  child.stdout.resume();
  return { url, process: child };
}

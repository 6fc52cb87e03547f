import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(__dirname, '..');
export const BINARY = join(ROOT, 'target', 'release', 'sm8-webhooks');

/// A release server on a free port with a fresh SQLite database.
export interface StartedServer {
  url: string;
  databaseUrl: string;
  process: ChildProcess;
}

/// Starts `sm8-webhooks serve` with `env` added to the environment; resolves once it listens.
export async function startServer(env: Record<string, string>): Promise<StartedServer> {
  if (!existsSync(BINARY)) {
    throw new Error(`${BINARY} is missing: run \`make build\` first`);
  }
  const data = mkdtempSync(join(tmpdir(), 'sm8-e2e-'));
  const databaseUrl = `sqlite://${join(data, 'sm8.db')}`;
  const server = spawn(BINARY, ['serve', '--bind', '127.0.0.1:0'], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: databaseUrl, RUST_LOG: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return { url: await announcedAddress(server), databaseUrl, process: server };
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
    server.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${output}`));
    });
  });
}

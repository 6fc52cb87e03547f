import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
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

/// The instance owner every started server has, unless started with `{ owner: false }`.
export const OWNER = { email: 'owner@e2e.example', password: 'e2e owner password' };

/// Starts `sm8-webhooks serve` with `env` added to the environment; resolves once it listens. Before it starts,
/// `sm8-webhooks user add` creates OWNER in its database, as an operator would from the shell; without an owner,
/// the server prints its first-run setup link, found in `setupLink`. `prepare` is given the database, migrated,
/// before the server opens it (to seed what a test needs the server to find at start).
export async function startServer(
  env: Record<string, string>,
  { owner = true, prepare }: { owner?: boolean; prepare?: (databaseUrl: string) => void } = {},
): Promise<StartedServer & { setupLink?: string }> {
  if (!existsSync(BINARY)) {
    throw new Error(`${BINARY} is missing: run \`make build\` first`);
  }
  const data = mkdtempSync(join(tmpdir(), 'sm8-e2e-'));
  const databaseUrl = `sqlite://${join(data, 'sm8.db')}`;
  const environment = { ...process.env, DATABASE_URL: databaseUrl, RUST_LOG: 'warn', ...env };
  if (owner) {
    const added = spawnSync(BINARY, ['user', 'add', '--email', OWNER.email, '--password-stdin'], {
      cwd: ROOT,
      env: environment,
      input: OWNER.password + '\n',
      encoding: 'utf8',
    });
    if (added.status !== 0) {
      throw new Error(`user add failed (${added.status}):\n${added.stdout}${added.stderr}`);
    }
  }
  prepare?.(databaseUrl);
  const server = spawn(BINARY, ['serve', '--bind', '127.0.0.1:0'], {
    cwd: ROOT,
    env: environment,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const { url, setupLink } = await announcedAddress(server, !owner);
  return { url, databaseUrl, process: server, setupLink };
}

/// Resolves with the URL the server prints once it is listening, and with its setup link once printed too when
/// `withSetupLink`.
function announcedAddress(server: ChildProcess, withSetupLink: boolean): Promise<{ url: string; setupLink?: string }> {
  return new Promise((resolvePromise, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), 30_000);
    server.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = output.match(/serving on (http:\/\/[\d.]+:\d+)/);
      const setupLink = output.match(/(http:\/\/\S+\/admin\/invite\/[\w-]+)/)?.[1];
      if (match && (setupLink || !withSetupLink)) {
        clearTimeout(timer);
        resolvePromise({ url: match[1], setupLink });
      }
    });
    server.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${output}`));
    });
  });
}

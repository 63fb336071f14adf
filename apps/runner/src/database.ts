import { resolve } from 'node:path';
import { type Logger, describeError } from '@mana-ai/core';
import postgres, { type Sql } from 'postgres';
import type { RunnerConfig } from './config.js';

/** Where the embedded cluster keeps its data, relative to the current directory. */
export const EMBEDDED_DATA_DIR = '.mana-ai/pg';

/** Name of the database the runner uses inside the embedded cluster (as upstream's `mana_sync`). */
export const EMBEDDED_DATABASE = 'mana_sync';

// An embedded cluster can take a while to shut down cleanly; never hang the process on it.
const EMBEDDED_STOP_TIMEOUT_MS = 15_000;

/** The process's database: one postgres.js pool, and the embedded cluster when one was started. */
export interface Database {
  /** The one pool of the process. */
  sql: Sql;
  /**
   * One connection of its own for the /health check: a busy pool (a mission resolving many inputs)
   * must not make a reachable database look down.
   */
  healthSql: Sql;
  /** True when the runner started its own embedded PostgreSQL. */
  embedded: boolean;
  /** Closes the pool, then stops the embedded cluster (if any). Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** Data directory of the embedded cluster (default `.mana-ai/pg` in the current directory). */
  dataDir?: string;
}

/**
 * Seconds to wait before reconnecting after `retries` failed connection attempts in a row: 50 ms
 * doubling to at most 2 s, with jitter so several instances do not reconnect in lockstep.
 * postgres.js's default grows as 3^n / 100 up to 20 s, which after a short database restart
 * leaves a runner idle for many seconds after the database is back.
 */
export function reconnectBackoffSeconds(retries: number): number {
  return Math.min(0.05 * 2 ** Math.max(0, retries), 2) * (0.5 + Math.random() / 2);
}

/** Seconds a new connection may take to be ready before it is dropped and retried. */
export const CONNECT_TIMEOUT_SECONDS = 10;

/** The postgres.js options of the runner's pool (exported for the outage tests). */
export function poolOptions(config: Pick<RunnerConfig, 'concurrency'>): postgres.Options<Record<string, never>> {
  return {
    // A few connections beyond the planning concurrency for refresh, health checks and HTTP.
    max: config.concurrency + 4,
    connect_timeout: CONNECT_TIMEOUT_SECONDS,
    backoff: reconnectBackoffSeconds,
    onnotice: () => {},
    connection: { application_name: 'mana-ai' },
  };
}

function createPool(url: string, config: Pick<RunnerConfig, 'concurrency'>): Sql {
  return postgres(url, poolOptions(config));
}

/** The pool and the health check's own connection, closed together. */
function createClients(url: string, config: Pick<RunnerConfig, 'concurrency'>): { sql: Sql; healthSql: Sql; end(): Promise<void> } {
  const sql = createPool(url, config);
  const healthSql = postgres(url, { ...poolOptions(config), max: 1, connection: { application_name: 'mana-ai-health' } });
  return { sql, healthSql, end: async () => void (await Promise.all([sql.end({ timeout: 5 }), healthSql.end({ timeout: 5 })])) };
}

/**
 * Connects to `DATABASE_URL`, or when it is unset starts an embedded PostgreSQL in `.mana-ai/pg`
 * (created on first use) and connects to its `mana_sync` database.
 */
export async function openDatabase(
  config: Pick<RunnerConfig, 'databaseUrl' | 'concurrency'>,
  logger: Logger,
  options: OpenDatabaseOptions = {},
): Promise<Database> {
  if (config.databaseUrl) {
    const clients = createClients(config.databaseUrl, config);
    let closing: Promise<void> | undefined;
    return { sql: clients.sql, healthSql: clients.healthSql, embedded: false, close: () => (closing ??= clients.end()) };
  }

  // Imported lazily: a runner with DATABASE_URL never loads the embedded cluster's code.
  const { startEmbeddedPostgres } = await import('./embedded-postgres.js');
  const dataDir = resolve(options.dataDir ?? EMBEDDED_DATA_DIR);
  logger.info({ dataDir }, 'DATABASE_URL is unset: starting embedded PostgreSQL');
  const cluster = await startEmbeddedPostgres({ dataDir, logger });
  // Last resort if the process dies without closing: stop() signals postgres synchronously.
  const onExit = () => void cluster.stop().catch(() => {});
  process.once('exit', onExit);
  const stopCluster = async () => {
    let timer: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([
      cluster.stop().then(() => true),
      new Promise<false>((done) => {
        timer = setTimeout(() => done(false), EMBEDDED_STOP_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    process.removeListener('exit', onExit);
    if (stopped) logger.info({}, 'embedded PostgreSQL stopped');
    else logger.warn({ timeoutMs: EMBEDDED_STOP_TIMEOUT_MS }, 'embedded PostgreSQL did not confirm its shutdown in time');
  };

  let clients: ReturnType<typeof createClients>;
  try {
    const admin = postgres(cluster.url, { max: 1, onnotice: () => {} });
    try {
      const [row] = await admin<{ exists: boolean }[]>`SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = ${EMBEDDED_DATABASE}) AS exists`;
      if (!row?.exists) await admin.unsafe(`CREATE DATABASE ${EMBEDDED_DATABASE}`);
    } finally {
      await admin.end({ timeout: 5 });
    }
    const url = new URL(cluster.url);
    url.pathname = `/${EMBEDDED_DATABASE}`;
    clients = createClients(url.toString(), config);
  } catch (error) {
    logger.error({ error: describeError(error) }, 'embedded PostgreSQL unusable');
    await stopCluster();
    throw error;
  }

  let closing: Promise<void> | undefined;
  const close = async () => {
    await clients.end();
    await stopCluster();
  };
  return { sql: clients.sql, healthSql: clients.healthSql, embedded: true, close: () => (closing ??= close()) };
}

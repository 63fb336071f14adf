import { type Logger, describeError } from '@mana-ai/core';
import type { Sql } from 'postgres';
import type { Database } from './database.js';
import { RunnerError } from './errors.js';
import { type MigrationReport, allMigrations, migrate } from './migrate.js';

/** First wait between two boot attempts to reach the database; doubles up to {@link MAX_RETRY_MS}. */
const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5000;

/** Options of {@link prepareDatabase} and {@link waitForDatabase}. */
export interface PrepareDatabaseOptions {
  logger: Logger;
  /** `MANA_AI_BOOT_TIMEOUT_MS`: how long to wait for the database to answer. */
  timeoutMs: number;
  /** Aborts the wait (a signal during boot); the wait then rejects with the signal's reason. */
  signal?: AbortSignal;
}

type Attempt = { ok: true } | { ok: false; error: unknown } | { ok: false; stopped: 'timeout' | 'aborted' };

async function attempt(sql: Sql, withinMs: number, signal: AbortSignal | undefined): Promise<Attempt> {
  const query = sql`SELECT 1`;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stopped = new Promise<Attempt>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, stopped: 'timeout' }), withinMs);
    onAbort = () => resolve({ ok: false, stopped: 'aborted' });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  const answered = query.then(
    (): Attempt => ({ ok: true }),
    (error: unknown): Attempt => ({ ok: false, error }),
  );
  const outcome = await Promise.race([answered, stopped]);
  clearTimeout(timer);
  if (onAbort) signal?.removeEventListener('abort', onAbort);
  // A connection that keeps closing before it is ready never rejects the query: drop it.
  if ('stopped' in outcome) query.cancel();
  return outcome;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Waits until the database answers `SELECT 1`, retrying with exponential backoff (250 ms doubling
 * to 5 s) for at most `timeoutMs`. Throws `RUNNER_DATABASE_UNAVAILABLE` naming the last error
 * when the time is up, or the signal's reason when `signal` aborts.
 */
export async function waitForDatabase(sql: Sql, options: PrepareDatabaseOptions): Promise<void> {
  const { logger, timeoutMs, signal } = options;
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  for (let retries = 0; ; retries++) {
    signal?.throwIfAborted();
    const remaining = deadline - performance.now();
    const outcome = remaining > 0 ? await attempt(sql, remaining, signal) : ({ ok: false, stopped: 'timeout' } as const);
    if (outcome.ok) return;
    if ('stopped' in outcome) {
      signal?.throwIfAborted();
      const reason = lastError === undefined ? 'no answer: the connection closed or hung before it was ready' : describeError(lastError);
      throw new RunnerError(
        'RUNNER_DATABASE_UNAVAILABLE',
        `the database did not answer within ${timeoutMs / 1000} s (${reason}). Check DATABASE_URL and that PostgreSQL accepts ` +
          'connections there; MANA_AI_BOOT_TIMEOUT_MS sets how long boot waits',
        { cause: lastError, retryable: true, details: { timeoutMs } },
      );
    }
    lastError = outcome.error;
    const waitMs = Math.min(FIRST_RETRY_MS * 2 ** retries, MAX_RETRY_MS, Math.max(0, deadline - performance.now()));
    logger.warn({ error: describeError(outcome.error), retryInMs: Math.round(waitMs) }, 'database not reachable yet: retrying');
    await sleep(waitMs, signal);
  }
}

/**
 * Refuses a database without `public.sync_changes` (`RUNNER_SYNC_CHANGES_MISSING`): the runner
 * creates mana-sync's log only in its own embedded PostgreSQL, never in a database it was pointed at.
 */
export async function requireSyncChanges(sql: Sql): Promise<void> {
  const [row] = await sql<{ exists: boolean }[]>`SELECT to_regclass('public.sync_changes') IS NOT NULL AS exists`;
  if (row?.exists) return;
  throw new RunnerError(
    'RUNNER_SYNC_CHANGES_MISSING',
    'the database of DATABASE_URL has no table public.sync_changes (the change log mana-sync creates and owns); ' +
      "the runner creates it only in its embedded PostgreSQL. Point DATABASE_URL at mana-sync's mana_sync database " +
      '(see docs/database.md)',
  );
}

/** Ids of the migrations not recorded in `mana_ai.schema_migrations` (all of them when it does not exist). */
export async function pendingMigrations(sql: Sql): Promise<string[]> {
  const [table] = await sql<{ exists: boolean }[]>`SELECT to_regclass('mana_ai.schema_migrations') IS NOT NULL AS exists`;
  const recorded = new Set(table?.exists ? (await sql<{ id: string }[]>`SELECT id FROM mana_ai.schema_migrations`).map((row) => row.id) : []);
  return allMigrations.map((migration) => migration.id).filter((id) => !recorded.has(id));
}

/**
 * Applies the migrations; when that fails (typically a least-privileged login meeting a migration
 * it may not run), throws `RUNNER_MIGRATION_FAILED` naming the pending migrations and the fix.
 */
export async function migrateOrExplain(sql: Sql, logger: Logger): Promise<MigrationReport> {
  try {
    return await migrate(sql, { logger });
  } catch (error) {
    const pending = await pendingMigrations(sql).catch(() => undefined);
    const which = pending === undefined ? 'pending migrations' : `pending migration${pending.length === 1 ? '' : 's'} ${pending.join(', ')}`;
    throw new RunnerError(
      'RUNNER_MIGRATION_FAILED',
      `${which} could not be applied (${describeError(error)}). Run \`mana-ai migrate\` as the owner of schema mana_ai ` +
        'before starting this version (see docs/database.md and docs/upgrading.md)',
      { cause: error, details: { pending: pending ?? [] } },
    );
  }
}

/**
 * Boot's database steps, shared by `start`, `migrate` and `tick --once`: wait for the database
 * (bounded), refuse a database without `sync_changes` unless it is the embedded one, migrate.
 */
export async function prepareDatabase(database: Database, options: PrepareDatabaseOptions): Promise<MigrationReport> {
  await waitForDatabase(database.sql, options);
  if (!database.embedded) await requireSyncChanges(database.sql);
  options.signal?.throwIfAborted();
  return migrateOrExplain(database.sql, options.logger);
}

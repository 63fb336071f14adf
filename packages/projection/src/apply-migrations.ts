import { type Logger, type Migration, type SqlClient, type SqlTransaction, noopLogger } from '@mana-ai/core';
import { ProjectionError } from './errors.js';

/** What {@link applyMigrations} did. */
export interface MigrationReport {
  /** Ids applied by this call, in order. */
  applied: string[];
  /** Ids that were already recorded and skipped. */
  skipped: string[];
}

/** Collaborators of {@link applyMigrations}. */
export interface ApplyMigrationsOptions {
  /** Logs each applied migration and each recorded migration whose SQL changed since (no-op default). */
  logger?: Logger;
}

/** The advisory-lock key every migrating instance serialises on (arbitrary but fixed: `mana`). */
export const MIGRATION_LOCK_KEY = 0x6d616e61;

async function checksum(sql: string): Promise<string> {
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', new TextEncoder().encode(sql)));
  return Array.from(digest, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/**
 * Applies the migrations not yet recorded in `mana_ai.schema_migrations` (id and SHA-256 of the SQL),
 * in the given order, all in one transaction under an advisory lock, so instances booting at once
 * and repeated runs are safe. Pass every package's `migrations`, the projection's first (it creates
 * the `mana_ai` schema): `applyMigrations(sql, [...projection.migrations, ...resolvers.migrations,
 * ...research.migrations])`. A recorded migration is skipped; when its recorded checksum is neither
 * the current text's nor a `previousChecksums` entry's `previous` for the current text (an earlier
 * text that differs in comments only), its SQL changed and a warning is logged.
 * When everything is recorded already it runs no DDL, so a login without CREATE rights can call it
 * at boot; applying needs a role that owns `mana_ai` (see the README). Duplicate ids reject with
 * `PROJECTION_INVALID_ARGUMENT` before anything runs.
 */
export async function applyMigrations(
  sql: SqlClient,
  migrations: readonly Migration[],
  options: ApplyMigrationsOptions = {},
): Promise<MigrationReport> {
  const logger = options.logger ?? noopLogger;
  const ids = new Set<string>();
  for (const migration of migrations) {
    if (ids.has(migration.id)) throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', `migration ${migration.id} is listed twice`);
    ids.add(migration.id);
  }
  const sums = await Promise.all(migrations.map((migration) => checksum(migration.sql)));
  const report: MigrationReport = { applied: [], skipped: [] };
  const skip = (migration: Migration, recorded: string, sum: string): void => {
    if (recorded !== sum && !migration.previousChecksums?.some((rewrite) => rewrite.previous === recorded && rewrite.current === sum)) {
      logger.warn({ migration: migration.id }, 'migration changed after it was applied');
    }
    report.skipped.push(migration.id);
  };
  // Fast path without DDL: CREATE … IF NOT EXISTS needs CREATE rights even when nothing is missing.
  const upToDate = await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`;
    const [table] = await tx<{ exists: boolean }[]>`SELECT to_regclass('mana_ai.schema_migrations') IS NOT NULL AS exists`;
    if (!table?.exists) return false;
    const recorded = await recordedChecksums(tx);
    if (!migrations.every((migration) => recorded.has(migration.id))) return false;
    for (const [index, migration] of migrations.entries()) skip(migration, recorded.get(migration.id) as string, sums[index] as string);
    return true;
  });
  if (upToDate) return report;
  await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`;
    await tx`CREATE SCHEMA IF NOT EXISTS mana_ai`;
    await tx`
      CREATE TABLE IF NOT EXISTS mana_ai.schema_migrations (
        id TEXT PRIMARY KEY,
        checksum TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
      )`;
    const recorded = await recordedChecksums(tx);
    for (const [index, migration] of migrations.entries()) {
      const sum = sums[index] as string;
      const previous = recorded.get(migration.id);
      if (previous !== undefined) {
        skip(migration, previous, sum);
        continue;
      }
      await tx.unsafe(migration.sql);
      await tx`INSERT INTO mana_ai.schema_migrations (id, checksum) VALUES (${migration.id}, ${sum})`;
      report.applied.push(migration.id);
      logger.info({ migration: migration.id }, 'migration applied');
    }
  });
  return report;
}

async function recordedChecksums(tx: SqlTransaction): Promise<Map<string, string>> {
  const rows = await tx<{ id: string; checksum: string }[]>`SELECT id, checksum FROM mana_ai.schema_migrations`;
  return new Map(rows.map((row) => [row.id, row.checksum]));
}

import { createHash } from 'node:crypto';
import type { Logger, Migration } from '@mana-ai/core';
import { noopLogger } from '@mana-ai/core';
import { migrations as projectionMigrations } from '@mana-ai/projection';
import { migrations as researchMigrations } from '@mana-ai/research';
import { migrations as resolversMigrations } from '@mana-ai/resolvers';
import type { Sql } from 'postgres';

/** Every migration the runner applies, in order: projection, resolvers, research. */
export const allMigrations: readonly Migration[] = [
  ...projectionMigrations,
  ...resolversMigrations,
  ...researchMigrations,
];

/** What {@link migrate} did. */
export interface MigrationReport {
  /** Ids applied by this call. */
  applied: string[];
  /** Ids that were already recorded and skipped. */
  skipped: string[];
}

// Arbitrary but fixed: all runner instances booting at once serialise on this key.
const MIGRATION_LOCK_KEY = 0x6d616e61;

function checksum(sql: string): string {
  return createHash('sha256').update(sql).digest('hex');
}

/**
 * Applies the migrations not yet recorded in `mana_ai.schema_migrations`, all in one transaction
 * under an advisory lock, so concurrent boots and repeated runs are safe. Every migration is also
 * idempotent on its own.
 */
export async function migrate(
  sql: Sql,
  options: { migrations?: readonly Migration[]; logger?: Logger } = {},
): Promise<MigrationReport> {
  const migrations = options.migrations ?? allMigrations;
  const logger = options.logger ?? noopLogger;
  const report: MigrationReport = { applied: [], skipped: [] };
  // Fast path without DDL: CREATE … IF NOT EXISTS needs CREATE rights even when nothing is missing,
  // so a least-privileged login (migrations run once by the owner) could not boot otherwise.
  const upToDate = await sql.begin(async (tx) => {
    await tx`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`;
    const [table] = await tx<{ exists: boolean }[]>`SELECT to_regclass('mana_ai.schema_migrations') IS NOT NULL AS exists`;
    if (!table?.exists) return false;
    const rows = await tx<{ id: string; checksum: string }[]>`SELECT id, checksum FROM mana_ai.schema_migrations`;
    const recorded = new Map(rows.map((row) => [row.id, row.checksum]));
    if (!migrations.every((migration) => recorded.has(migration.id))) return false;
    for (const migration of migrations) {
      if (recorded.get(migration.id) !== checksum(migration.sql)) logger.warn({ migration: migration.id }, 'migration changed after it was applied');
      report.skipped.push(migration.id);
    }
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
    const rows = await tx<{ id: string; checksum: string }[]>`SELECT id, checksum FROM mana_ai.schema_migrations`;
    const recorded = new Map(rows.map((row) => [row.id, row.checksum]));
    for (const migration of migrations) {
      const sum = checksum(migration.sql);
      const previous = recorded.get(migration.id);
      if (previous !== undefined) {
        if (previous !== sum) logger.warn({ migration: migration.id }, 'migration changed after it was applied');
        report.skipped.push(migration.id);
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

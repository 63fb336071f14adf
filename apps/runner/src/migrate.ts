import type { Logger, Migration } from '@mana-ai/core';
import { type MigrationReport, applyMigrations, migrations as projectionMigrations } from '@mana-ai/projection';
import { migrations as researchMigrations } from '@mana-ai/research';
import { migrations as resolversMigrations } from '@mana-ai/resolvers';
import type { Sql } from 'postgres';

export type { MigrationReport };

/** Every migration the runner applies, in order: projection, resolvers, research. */
export const allMigrations: readonly Migration[] = [
  ...projectionMigrations,
  ...resolversMigrations,
  ...researchMigrations,
];

/** Applies {@link allMigrations} (or `options.migrations`) with the projection's `applyMigrations`. */
export function migrate(sql: Sql, options: { migrations?: readonly Migration[]; logger?: Logger } = {}): Promise<MigrationReport> {
  return applyMigrations(sql, options.migrations ?? allMigrations, options.logger ? { logger: options.logger } : {});
}

import { createHash } from 'node:crypto';
import { type Logger, type Migration, noopLogger } from '@mana-ai/core';
import { type TestDatabase, createTestDatabase } from '@mana-ai/test-postgres';
import type { Sql } from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { applyMigrations } from './apply-migrations.js';
import { migrations } from './migrations.js';

let db: TestDatabase;
let fresh: Sql;

beforeAll(async () => {
  db = await createTestDatabase();
  fresh = db.connect();
});
afterAll(() => db.drop());

beforeEach(async () => {
  await fresh.unsafe('DROP SCHEMA IF EXISTS mana_ai CASCADE; DROP TABLE IF EXISTS public.sync_changes; DROP TABLE IF EXISTS public.migration_probe;');
});

const probe: Migration = { id: 'test/0001_probe', sql: 'CREATE TABLE IF NOT EXISTS public.migration_probe (id int)' };

function captureLogger(): { logger: Logger; warnings: unknown[] } {
  const warnings: unknown[] = [];
  return { warnings, logger: { ...noopLogger, warn: (context: unknown) => warnings.push(context) } };
}

async function recorded(): Promise<{ id: string; checksum: string }[]> {
  return fresh`SELECT id, checksum FROM mana_ai.schema_migrations ORDER BY applied_at, id`;
}

describe('applyMigrations', () => {
  it('applies every migration in order with its SHA-256 and applies nothing when run again', async () => {
    const first = await applyMigrations(fresh, [...migrations, probe]);
    expect(first).toEqual({ applied: [...migrations, probe].map((m) => m.id), skipped: [] });
    const rows = await recorded();
    expect(new Map(rows.map((row) => [row.id, row.checksum]))).toEqual(
      new Map([...migrations, probe].map((m) => [m.id, createHash('sha256').update(m.sql).digest('hex')])),
    );
    const second = await applyMigrations(fresh, [...migrations, probe]);
    expect(second).toEqual({ applied: [], skipped: [...migrations, probe].map((m) => m.id) });
  });

  it('applies only the migration added since the last run', async () => {
    await applyMigrations(fresh, migrations);
    const report = await applyMigrations(fresh, [...migrations, probe]);
    expect(report.applied).toEqual([probe.id]);
    const [table] = await fresh<{ exists: boolean }[]>`SELECT to_regclass('public.migration_probe') IS NOT NULL AS exists`;
    expect(table?.exists).toBe(true);
  });

  it('applies each migration exactly once when two instances migrate at the same time', async () => {
    const other = db.connect();
    const [a, b] = await Promise.all([applyMigrations(fresh, [...migrations, probe]), applyMigrations(other, [...migrations, probe])]);
    expect([...a.applied, ...b.applied].sort()).toEqual([...migrations, probe].map((m) => m.id).sort());
    expect(await recorded()).toHaveLength(migrations.length + 1);
  });

  it('skips a recorded migration whose SQL changed and warns without its SQL', async () => {
    await applyMigrations(fresh, [...migrations, probe]);
    const { logger, warnings } = captureLogger();
    const changed = { id: probe.id, sql: `${probe.sql}; SELECT 'changed'` };
    const report = await applyMigrations(fresh, [...migrations, changed], { logger });
    expect(report.applied).toEqual([]);
    expect(warnings).toEqual([{ migration: probe.id }]);
  });

  it('skips without a warning a recorded migration whose checksum is a previousChecksums entry of the current text', async () => {
    const released = { id: probe.id, sql: `-- first comment\n${probe.sql}` };
    await applyMigrations(fresh, [...migrations, released]);
    const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
    const recommentedSql = `-- second comment\n${probe.sql}`;
    const recommented = { id: probe.id, sql: recommentedSql, previousChecksums: [{ previous: sha256(released.sql), current: sha256(recommentedSql) }] };
    const { logger, warnings } = captureLogger();
    expect(await applyMigrations(fresh, [...migrations, recommented], { logger })).toEqual({
      applied: [],
      skipped: [...migrations, probe].map((m) => m.id),
    });
    expect(warnings).toEqual([]);
    // A text changed after the rewrite voids the entry: the migration is reported as changed.
    const modified = { ...recommented, sql: `${recommented.sql}; SELECT 'changed'` };
    await applyMigrations(fresh, [...migrations, modified], { logger });
    expect(warnings).toEqual([{ migration: probe.id }]);
  });

  it('records nothing when one migration fails', async () => {
    const broken: Migration = { id: 'test/0002_broken', sql: 'SELECT * FROM no_such_table' };
    await expect(applyMigrations(fresh, [...migrations, probe, broken])).rejects.toThrow(/no_such_table/);
    const [schema] = await fresh<{ exists: boolean }[]>`SELECT to_regnamespace('mana_ai') IS NOT NULL AS exists`;
    expect(schema?.exists).toBe(false);
  });

  it('rejects a list with a duplicate id before touching the database', async () => {
    await expect(applyMigrations(fresh, [probe, probe])).rejects.toMatchObject({ code: 'PROJECTION_INVALID_ARGUMENT' });
    const [schema] = await fresh<{ exists: boolean }[]>`SELECT to_regnamespace('mana_ai') IS NOT NULL AS exists`;
    expect(schema?.exists).toBe(false);
  });
});

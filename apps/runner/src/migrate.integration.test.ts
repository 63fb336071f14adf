import { createHash } from 'node:crypto';
import { type Logger, type Migration, noopLogger } from '@mana-ai/core';
import { type TestDatabase, createTestDatabase } from '@mana-ai/test-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allMigrations, migrate } from './migrate.js';

/**
 * The opening comment lines of the migration files as released, before their citations of the
 * original service's document became docs/wire-contract.md links (nothing else changed).
 */
const RELEASED_OPENINGS: Record<string, { released: string; current: string }> = {
  'projection/0001_sync_changes': {
    released: `-- The sync log, exactly as mana-sync creates it (UPSTREAM §1.1–1.3). Only created where the
-- database has no sync_changes table yet (embedded/dev); an existing table owned by mana-sync is
-- never touched.
`,
    current: `-- The sync log, exactly as mana-sync creates it (docs/wire-contract.md#the-sync-log). Only created
-- where the database has no sync_changes table yet (embedded/dev); an existing table owned by
-- mana-sync is never touched.
`,
  },
  'projection/0002_mana_ai_schema': {
    released: "-- The runner's own schema (UPSTREAM §4.1): mission and agent snapshots and token usage.\n",
    current: "-- The runner's own schema (docs/wire-contract.md#the-mana_ai-schema): mission and agent snapshots\n-- and token usage.\n",
  },
  'resolvers/0001_decrypt_audit': {
    released: '-- One row per decrypt attempt (UPSTREAM §4.1 items 5–8), readable by its user only.\n',
    current: '-- One row per decrypt attempt (docs/wire-contract.md#decrypt-audit), readable by its user only.\n',
  },
  'research/0001_research_jobs': {
    released: '-- Deep-research jobs carried across ticks (UPSTREAM §4.1 items 12–13).\n',
    current: '-- Deep-research jobs carried across ticks (docs/wire-contract.md#research-jobs).\n',
  },
  'research/0002_research_job_state': {
    released: '-- Cross-tick state of deep-research jobs (DESIGN §3.9, UPSTREAM §14 B17): a completed answer is\n',
    current: '-- Cross-tick state of deep-research jobs (DESIGN §3.9; B17 in\n-- docs/wire-contract.md#the-originals-known-defects): a completed answer is\n',
  },
};

/** Every migration with the text it was released with. */
function releasedMigrations(): Migration[] {
  return allMigrations.map((migration) => {
    const opening = RELEASED_OPENINGS[migration.id];
    if (!opening) return migration;
    expect(migration.sql.startsWith(opening.current), migration.id).toBe(true);
    return { id: migration.id, sql: opening.released + migration.sql.slice(opening.current.length) };
  });
}

function captureWarnings(): { logger: Logger; warnings: unknown[] } {
  const warnings: unknown[] = [];
  return { warnings, logger: { ...noopLogger, warn: (context: unknown) => warnings.push(context) } };
}

describe('migrate', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(() => db.drop());

  it('records every migration in the template the tests are cloned from', async () => {
    const rows = await db.sql<{ id: string }[]>`SELECT id FROM mana_ai.schema_migrations ORDER BY applied_at, id`;
    expect(rows.map((row) => row.id).sort()).toEqual(allMigrations.map((m) => m.id).sort());
  });

  it('applies nothing and changes nothing when run twice', async () => {
    const before = await db.sql`SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN ('public', 'mana_ai') ORDER BY 1, 2`;
    const report = await migrate(db.sql);
    expect(report.applied).toEqual([]);
    expect(report.skipped).toHaveLength(allMigrations.length);
    const after = await db.sql`SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN ('public', 'mana_ai') ORDER BY 1, 2`;
    expect(after).toEqual(before);
  });

  it('lets a login without CREATE rights boot when every migration is already applied', async () => {
    await db.sql.unsafe(`DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mana_ai_login_test') THEN
        CREATE ROLE mana_ai_login_test LOGIN PASSWORD 'login-test' IN ROLE mana_ai_runner;
      END IF; END $$`);
    await db.sql.unsafe('REVOKE CREATE ON SCHEMA mana_ai FROM PUBLIC');
    const login = db.connect({ url: db.urlFor('mana_ai_login_test', 'login-test') });
    const [rights] = await login<{ database: boolean; schema: boolean }[]>`
      SELECT has_database_privilege(current_database(), 'CREATE') AS database, has_schema_privilege('mana_ai', 'CREATE') AS schema`;
    expect(rights).toEqual({ database: false, schema: false });
    const report = await migrate(login);
    expect(report).toEqual({ applied: [], skipped: allMigrations.map((m) => m.id) });
  });

  it('creates every table and re-applies cleanly on a fresh database when run twice', async () => {
    const fresh = db.connect();
    await fresh.unsafe('DROP SCHEMA mana_ai CASCADE; DROP TABLE public.sync_changes;');
    const first = await migrate(fresh);
    expect(first.applied).toEqual(allMigrations.map((m) => m.id));
    await fresh`DELETE FROM mana_ai.schema_migrations`;
    const second = await migrate(fresh);
    expect(second.applied).toEqual(allMigrations.map((m) => m.id));
    const tables = await fresh<{ name: string }[]>`
      SELECT table_schema || '.' || table_name AS name FROM information_schema.tables
      WHERE table_schema IN ('public', 'mana_ai') ORDER BY 1`;
    expect(tables.map((t) => t.name)).toEqual(
      expect.arrayContaining([
        'mana_ai.agent_snapshots',
        'mana_ai.decrypt_audit',
        'mana_ai.mission_research_jobs',
        'mana_ai.mission_snapshots',
        'mana_ai.schema_migrations',
        'mana_ai.token_usage',
        'public.sync_changes',
      ]),
    );
    const [rls] = await fresh<{ enabled: boolean; forced: boolean }[]>`
      SELECT relrowsecurity AS enabled, relforcerowsecurity AS forced FROM pg_class WHERE oid = 'public.sync_changes'::regclass`;
    expect(rls).toEqual({ enabled: true, forced: true });
  });

  it('accepts a database migrated with the released texts of rewritten migration files, and still warns about a modified one', async () => {
    const fresh = db.connect();
    await fresh.unsafe('DROP SCHEMA mana_ai CASCADE; DROP TABLE public.sync_changes;');
    const released = releasedMigrations();
    await migrate(fresh, { migrations: released });
    const recorded = new Map(
      (await fresh<{ id: string; checksum: string }[]>`SELECT id, checksum FROM mana_ai.schema_migrations`).map((row) => [row.id, row.checksum]),
    );
    for (const migration of allMigrations) {
      if (!(migration.id in RELEASED_OPENINGS)) continue;
      // The database holds the released checksum, which the migration lists as a previous one.
      const releasedSum = createHash('sha256').update(released.find((m) => m.id === migration.id)!.sql).digest('hex');
      expect(recorded.get(migration.id), migration.id).toBe(releasedSum);
      const currentSum = createHash('sha256').update(migration.sql).digest('hex');
      expect(migration.previousChecksums, migration.id).toEqual([{ previous: releasedSum, current: currentSum }]);
    }
    const current = captureWarnings();
    expect(await migrate(fresh, { logger: current.logger })).toEqual({ applied: [], skipped: allMigrations.map((m) => m.id) });
    expect(current.warnings).toEqual([]);
    // A migration whose SQL really changed is still reported.
    const modified = allMigrations.map((m) => (m.id === 'resolvers/0001_decrypt_audit' ? { ...m, sql: `${m.sql}\nSELECT 1;\n` } : m));
    const changed = captureWarnings();
    expect((await migrate(fresh, { migrations: modified, logger: changed.logger })).applied).toEqual([]);
    expect(changed.warnings).toEqual([{ migration: 'resolvers/0001_decrypt_audit' }]);
  });

  it('leaves an existing sync_changes table alone', async () => {
    const fresh = db.connect();
    await fresh.unsafe('DROP SCHEMA mana_ai CASCADE; DROP TABLE public.sync_changes;');
    // mana-sync's table, with a column of its own that our DDL does not know.
    await fresh.unsafe(`CREATE TABLE public.sync_changes (
      id UUID PRIMARY KEY DEFAULT gen_random_uuid(), app_id TEXT NOT NULL, table_name TEXT NOT NULL,
      record_id TEXT NOT NULL, user_id TEXT NOT NULL, op TEXT NOT NULL, data JSONB, field_meta JSONB DEFAULT '{}',
      client_id TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now(), schema_version INT NOT NULL DEFAULT 1,
      actor JSONB, origin TEXT, space_id TEXT, owned_by_mana_sync BOOLEAN)`);
    await migrate(fresh);
    const columns = await fresh<{ column_name: string }[]>`
      SELECT column_name FROM information_schema.columns WHERE table_name = 'sync_changes' ORDER BY ordinal_position`;
    expect(columns.at(-1)?.column_name).toBe('owned_by_mana_sync');
    const policies = await fresh<{ policyname: string }[]>`
      SELECT policyname FROM pg_policies WHERE tablename = 'sync_changes' ORDER BY policyname`;
    // Our user-isolation policies are mana-sync's business there; only the feed policy is added.
    expect(policies.map((p) => p.policyname)).not.toContain('sync_changes_user_isolation');
  });
});

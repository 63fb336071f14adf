import { type TestDatabase, createTestDatabase } from '@mana-ai/test-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from './migrations.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

describe('migrations', () => {
  it('applies again without error or change when the schema already exists', async () => {
    const before = await db.sql`SELECT count(*)::int AS n FROM pg_policies WHERE tablename = 'sync_changes'`;
    for (const migration of migrations) await db.sql.unsafe(migration.sql);
    for (const migration of migrations) await db.sql.unsafe(migration.sql);
    const after = await db.sql`SELECT count(*)::int AS n FROM pg_policies WHERE tablename = 'sync_changes'`;
    expect(after).toEqual(before);
  });

  it('creates the feed owner and the runner role without login or BYPASSRLS, and the feed index', async () => {
    const roles = await db.sql`
      SELECT rolname, rolcanlogin, rolbypassrls, rolsuper FROM pg_roles
      WHERE rolname IN ('mana_ai_feed', 'mana_ai_runner') ORDER BY rolname`;
    expect(roles.map((role) => [role.rolname, role.rolbypassrls, role.rolsuper])).toEqual([
      ['mana_ai_feed', false, false],
      ['mana_ai_runner', false, false],
    ]);
    const [feed] = await db.sql`
      SELECT pg_get_userbyid(p.proowner) AS owner, p.prosecdef AS security_definer
      FROM pg_proc p WHERE p.oid = 'mana_ai.change_feed(timestamptz, uuid, integer)'::regprocedure`;
    expect(feed).toEqual({ owner: 'mana_ai_feed', security_definer: true });
    const [index] = await db.sql`SELECT to_regclass('public.idx_sync_changes_mana_ai_feed')::text AS name`;
    expect(index?.name).toBe('idx_sync_changes_mana_ai_feed');
  });
});

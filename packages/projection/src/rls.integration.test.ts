import { type TestDatabase, createTestDatabase } from '@mana-ai/test-postgres';
import type { Sql } from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAsRunner, insertChanges, missionData } from '../test/helpers.js';
import { type Projection, createProjection } from './projection.js';
import { withUser } from './with-user.js';

let db: TestDatabase;
let runner: Sql;
let projection: Projection;

beforeAll(async () => {
  db = await createTestDatabase();
  runner = await connectAsRunner(db);
  projection = createProjection({ sql: runner });
  await insertChanges(db.sql, [
    { userId: 'u-1', recordId: 'm-1', data: missionData('m-1') },
    { userId: 'u-2', recordId: 'm-2', data: missionData('m-2') },
    { userId: 'u-2', recordId: 'n-1', appId: 'notes', table: 'notes', data: { title: 'secret of u-2' } },
    { userId: 'u-1', recordId: 'n-9', appId: 'notes', table: 'notes', data: { title: 'a', body: 'x' } },
    {
      userId: 'u-1',
      recordId: 'n-9',
      appId: 'notes',
      table: 'notes',
      op: 'update',
      data: { title: 'b' },
      fieldMeta: { title: '2030-01-01T00:00:00.000Z' },
    },
  ]);
});
afterAll(() => db.drop());

describe('least privilege', () => {
  it('runs the runner as a role without superuser or BYPASSRLS rights', async () => {
    const [role] = await runner<{ current_user: string; rolsuper: boolean; rolbypassrls: boolean }[]>`
      SELECT current_user, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`;
    expect(role).toEqual({ current_user: 'mana_ai_runner', rolsuper: false, rolbypassrls: false });
    const [feedRole] = await db.sql`SELECT rolcanlogin, rolbypassrls FROM pg_roles WHERE rolname = 'mana_ai_feed'`;
    expect(feedRole).toEqual({ rolcanlogin: false, rolbypassrls: false });
  });

  it('reads no sync_changes rows outside withUser and only the own rows inside it', async () => {
    expect(await runner`SELECT user_id FROM sync_changes`).toHaveLength(0);
    const own = await withUser(runner, 'u-1', (tx) => tx<{ user_id: string }[]>`SELECT DISTINCT user_id FROM sync_changes`);
    expect(own.map((row) => row.user_id)).toEqual(['u-1']);
    const probe = await withUser(runner, 'u-1', (tx) => tx`SELECT 1 FROM sync_changes WHERE user_id = 'u-2'`);
    expect(probe).toHaveLength(0);
  });

  it('cannot write a row for another user inside withUser', async () => {
    await expect(
      withUser(runner, 'u-1', (tx) => tx`
        INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
        VALUES ('ai', 'aiMissions', 'm-x', 'u-2', 'update', '{}', 'mana-ai-runner')`),
    ).rejects.toThrow(/row-level security/);
  });

  it('reads other users’ sync_changes rows only through the change feed, and only their missions and agents', async () => {
    const rows = await runner<{ user_id: string; table_name: string }[]>`
      SELECT user_id, table_name FROM mana_ai.change_feed(NULL, NULL, 100)`;
    expect(rows.map((row) => `${row.user_id}:${row.table_name}`).sort()).toEqual(['u-1:aiMissions', 'u-2:aiMissions']);
    await expect(runner`SELECT * FROM mana_ai.change_feed_horizon()`).rejects.toThrow(/permission denied/);
  });

  it('refuses an empty user id before touching the database', async () => {
    await expect(withUser(runner, '', async () => 1)).rejects.toMatchObject({ code: 'PROJECTION_EMPTY_USER_ID' });
    await expect(projection.replayRecord('', 'notes', 'notes', 'n-1')).rejects.toMatchObject({ code: 'PROJECTION_EMPTY_USER_ID' });
  });
});

describe('user scope of the mana_ai tables (two users, the runner role)', () => {
  const contentTables = ['mission_snapshots', 'agent_snapshots', 'token_usage', 'mission_research_jobs', 'decrypt_audit'] as const;

  beforeAll(async () => {
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'a-1', table: 'agents', data: { name: 'agent of u-1', state: 'active' } },
      { userId: 'u-2', recordId: 'a-2', table: 'agents', data: { name: 'agent of u-2', state: 'active' } },
    ]);
    await projection.refresh();
    // Rows the runner writes per user, put here by the superuser for both users.
    for (const user of ['u-1', 'u-2']) {
      await db.sql`INSERT INTO mana_ai.token_usage (user_id, agent_id, mission_id, tokens_used) VALUES (${user}, 'a', 'm', 7)`;
      await db.sql`
        INSERT INTO mana_ai.mission_research_jobs (user_id, mission_id, task_id, provider_id, state, result)
        VALUES (${user}, 'm', 't', 'p', 'completed', '{"answer":"research of the user"}')`;
      await db.sql`
        INSERT INTO mana_ai.decrypt_audit (user_id, mission_id, table_name, record_id, status)
        VALUES (${user}, 'm', 'notes', 'n', 'ok')`;
    }
    const [counts] = await db.sql<{ missions: string; agents: string }[]>`
      SELECT (SELECT count(*) FROM mana_ai.mission_snapshots)::text AS missions, (SELECT count(*) FROM mana_ai.agent_snapshots)::text AS agents`;
    expect(counts).toEqual({ missions: '2', agents: '2' });
  });

  it('reads no snapshot, token usage, research job or audit row of any user outside withUser', async () => {
    for (const table of contentTables) {
      const rows = await runner.unsafe(`SELECT user_id FROM mana_ai.${table}`);
      expect({ table, rows: rows.length }).toEqual({ table, rows: 0 });
    }
  });

  it('reads only the scoped user’s rows inside withUser, even when it asks for another user’s', async () => {
    for (const table of contentTables) {
      const own = await withUser(runner, 'u-1', (tx) => tx.unsafe<{ user_id: string }[]>(`SELECT DISTINCT user_id FROM mana_ai.${table}`));
      expect({ table, users: own.map((row) => row.user_id) }).toEqual({ table, users: ['u-1'] });
      const other = await withUser(runner, 'u-1', (tx) => tx.unsafe(`SELECT 1 FROM mana_ai.${table} WHERE user_id = 'u-2'`));
      expect({ table, rows: other.length }).toEqual({ table, rows: 0 });
    }
  });

  it('cannot write, update or delete another user’s rows inside withUser', async () => {
    await expect(
      withUser(runner, 'u-1', (tx) => tx`INSERT INTO mana_ai.token_usage (user_id, agent_id, mission_id, tokens_used) VALUES ('u-2', 'a', 'm', 1)`),
    ).rejects.toThrow(/row-level security/);
    const updated = await withUser(runner, 'u-1', (tx) => tx`UPDATE mana_ai.mission_snapshots SET lease_owner = 'x' WHERE user_id = 'u-2'`);
    expect(updated.count).toBe(0);
    const deleted = await withUser(runner, 'u-1', (tx) => tx`DELETE FROM mana_ai.mission_research_jobs WHERE user_id = 'u-2'`);
    expect(deleted.count).toBe(0);
  });

  it('claims across users return keys, due slots and lease ends only, and the projection reads each record in its user’s scope', async () => {
    const rows = await runner.begin((tx) => tx`SELECT * FROM mana_ai.claim_due_missions('rls-test', 10, 20, 60000)`);
    expect(Object.keys(rows[0] ?? {}).sort()).toEqual(['candidates', 'due_slot', 'healed', 'lease_until', 'mission_id', 'user_id']);
    expect(rows.map((row) => `${row.user_id}/${row.mission_id}`).sort()).toEqual(['u-1/m-1', 'u-2/m-2']);
    await projection.release('rls-test');
    const claimed = await projection.claimDue({ owner: 'rls-test', limit: 10 });
    expect(claimed.map(({ mission }) => `${mission.userId}/${mission.id}/${mission.title}`).sort()).toEqual([
      `u-1/m-1/${missionData('m-1').title}`,
      `u-2/m-2/${missionData('m-2').title}`,
    ]);
    await projection.release('rls-test');
    // The other cross-user functions return counts and times.
    const [stats] = await runner`SELECT * FROM mana_ai.mission_lease_stats()`;
    expect(Object.keys(stats ?? {}).sort()).toEqual(['active', 'expired', 'oldest_expired']);
    const [due] = await runner`SELECT mana_ai.next_due_in_ms() AS ms`;
    expect(typeof due?.ms).toBe('number');
  });

  it('cannot obtain another user’s snapshot through the refresh functions by naming its keys', async () => {
    const keys = JSON.stringify([{ table_name: 'aiMissions', user_id: 'u-2', record_id: 'm-2' }]);
    // 0006's keys-based reader is gone; the refresh reads snapshots only through the feed.
    await expect(runner`SELECT * FROM mana_ai.refresh_stored_snapshots(${keys}::text::jsonb)`).rejects.toThrow(/does not exist/);
    const cursor = async () => {
      const [row] = await db.sql<{ created_at: string; id: string }[]>`SELECT created_at::text AS created_at, id::text AS id FROM mana_ai.projection_cursors`;
      return row!;
    };
    // After the cursor: no rows, so no snapshot of anybody.
    const { created_at: at, id } = await cursor();
    expect(await runner`SELECT kind, user_id FROM mana_ai.refresh_batch(${at}::text::timestamptz, ${id}::uuid, 100)`).toEqual([]);
    // A new row of u-1 brings u-1's snapshot of that mission along, and nothing of u-2.
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'm-1', op: 'update', data: { title: 'edited' } }]);
    const batch = await runner<{ kind: string; user_id: string; record_id: string; record: unknown }[]>`
      SELECT kind, user_id, record_id, record FROM mana_ai.refresh_batch(${at}::text::timestamptz, ${id}::uuid, 100)`;
    expect(batch.map((row) => `${row.kind}:${row.user_id}/${row.record_id}`)).toEqual(['change:u-1/m-1', 'snapshot:u-1/m-1']);
    expect(JSON.stringify(batch)).not.toContain('u-2');
    // The write function returns keys and lane state only.
    const [result] = await db.sql<{ result: string }[]>`
      SELECT pg_get_function_result('mana_ai.refresh_write_snapshots(jsonb, jsonb, jsonb)'::regprocedure) AS result`;
    expect(result?.result).toBe('TABLE(kind text, user_id text, record_id text, agent_id text, lane_state text)');
    await projection.refresh();
  });

  it('is no member of the definer role and cannot call its internal horizon helper', async () => {
    await expect(runner`SELECT * FROM mana_ai.change_feed_horizon()`).rejects.toThrow(/permission denied/);
    const [role] = await runner<{ member: boolean }[]>`SELECT pg_has_role('mana_ai_feed', 'MEMBER') AS member`;
    expect(role?.member).toBe(false);
  });
});

describe('replayRecord', () => {
  it('replays a record of any table with field-level LWW and without __fieldMeta', async () => {
    expect(await projection.replayRecord('u-1', 'notes', 'notes', 'n-9')).toEqual({ id: 'n-9', title: 'b', body: 'x' });
  });

  it('returns null for another user’s record', async () => {
    expect(await projection.replayRecord('u-1', 'notes', 'notes', 'n-1')).toBeNull();
    expect(await projection.replayRecord('u-2', 'notes', 'notes', 'n-1')).toEqual({ id: 'n-1', title: 'secret of u-2' });
  });

  it('stops replaying a record once it is deleted', async () => {
    await insertChanges(db.sql, [
      { userId: 'u-3', recordId: 't-1', appId: 'todo', table: 'tasks', data: { title: 'task' } },
      { userId: 'u-3', recordId: 't-1', appId: 'todo', table: 'tasks', op: 'delete', data: { deletedAt: '2026-04-22T10:00:00.000Z' } },
      { userId: 'u-3', recordId: 't-1', appId: 'todo', table: 'tasks', op: 'update', data: { title: 'late edit' } },
    ]);
    expect(await projection.replayRecord('u-3', 'todo', 'tasks', 't-1')).toBeNull();
  });
});

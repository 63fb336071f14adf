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

  it('sees other users only through the change feed, and only their missions and agents', async () => {
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

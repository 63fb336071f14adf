import { type EventBus, buildServerIteration, createEventBus, makeAgentActor } from '@mana-ai/core';
import { type TestDatabase, createTestDatabase, openTransaction } from '@mana-ai/test-postgres';
import type { Sql } from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { clearProjection, connectAsRunner, databaseNowMs, insertChanges, isoAt, missionData, snapshotsOf } from '../test/helpers.js';
import type { ProjectionEvents, RefreshProgressEvent, RowSkippedEvent } from './events.js';
import { deriveIterationId } from './iteration-id.js';
import { mergeChanges } from './lww.js';
import { type Projection, createProjection } from './projection.js';
import { REFRESH_LOCK_KEY } from './refresh.js';

let db: TestDatabase;
let runner: Sql;
let events: EventBus<ProjectionEvents>;
let projection: Projection;

beforeAll(async () => {
  db = await createTestDatabase();
  runner = await connectAsRunner(db);
});
afterAll(() => db.drop());

beforeEach(async () => {
  await clearProjection(db.sql);
  events = createEventBus<ProjectionEvents>();
  projection = createProjection({ sql: runner, events });
});

describe('refreshSnapshots', () => {
  it('bootstraps missions and agents from an existing log when no cursor exists', async () => {
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'm-1', data: missionData('m-1', { title: 'old' }), createdAt: '2026-04-20T08:00:00.000001Z' },
      {
        userId: 'u-1',
        recordId: 'm-1',
        op: 'update',
        data: { title: 'new' },
        fieldMeta: { title: '2026-04-20T09:00:00.000Z' },
        createdAt: '2026-04-20T09:00:00.000002Z',
      },
      { userId: 'u-2', recordId: 'm-2', data: missionData('m-2'), createdAt: '2026-04-20T08:00:01Z' },
      { userId: 'u-1', recordId: 'a-1', table: 'agents', data: { name: 'Mana', role: 'helper', state: 'active' } },
      { userId: 'u-1', recordId: 'n-1', table: 'notes', appId: 'notes', data: { title: 'not projected' } },
    ]);
    const result = await projection.refresh();
    expect(result).toMatchObject({ skipped: false, completed: true, rowsRead: 4, rowsApplied: 4, newSnapshots: 3, usersProcessed: 2 });
    const missions = await snapshotsOf(db.sql, 'mission_snapshots');
    expect(missions.get('u-1/m-1')).toMatchObject({ id: 'm-1', title: 'new', __fieldMeta: { title: '2026-04-20T09:00:00.000Z' } });
    expect(missions.get('u-2/m-2')).toMatchObject({ state: 'active' });
    expect((await snapshotsOf(db.sql, 'agent_snapshots')).get('u-1/a-1')).toMatchObject({ name: 'Mana' });
    const [cursor] = await db.sql<{ position: string }[]>`SELECT created_at::text AS position FROM mana_ai.projection_cursors`;
    expect(cursor?.position).toMatch(/\.\d{6}|\+00$/);
  });

  it('reads nothing again when no row arrived since the last refresh (B5)', async () => {
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'm-1', data: missionData('m-1'), createdAt: '2026-04-20T08:00:00.123456Z' }]);
    expect((await projection.refresh()).rowsRead).toBe(1);
    const again = await projection.refresh();
    expect(again).toMatchObject({ rowsRead: 0, rowsApplied: 0, updatedSnapshots: 0, completed: true });
  });

  it('keeps microsecond precision when rows share a millisecond', async () => {
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'm-1', data: missionData('m-1'), createdAt: '2026-04-20T08:00:00.123100Z' }]);
    await projection.refresh();
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'm-1', op: 'update', data: { title: 'later' }, createdAt: '2026-04-20T08:00:00.123900Z' },
    ]);
    const second = await projection.refresh();
    expect(second.rowsRead).toBe(1);
    expect(second.cursor?.createdAt).toBe('2026-04-20T08:00:00.123900Z');
    expect((await snapshotsOf(db.sql, 'mission_snapshots')).get('u-1/m-1')).toMatchObject({ title: 'later' });
    expect((await projection.refresh()).rowsRead).toBe(0);
  });

  it('reads only the new rows when the log already holds many', async () => {
    const base = Array.from({ length: 40 }, (_, index) => ({ userId: 'u-1', recordId: `m-${index}`, data: missionData(`m-${index}`) }));
    await insertChanges(db.sql, base);
    await projection.refresh();
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'm-3', op: 'update', data: { title: 'x' } },
      { userId: 'u-1', recordId: 'm-7', op: 'update', data: { title: 'y' } },
    ]);
    const result = await projection.refresh();
    expect(result).toMatchObject({ rowsRead: 2, rowsApplied: 2, updatedSnapshots: 2, newSnapshots: 0 });
  });

  it('streams the log in batches with progress events when bootstrapping', async () => {
    await insertChanges(
      db.sql,
      Array.from({ length: 10 }, (_, index) => ({ userId: `u-${index % 3}`, recordId: `m-${index}`, data: missionData(`m-${index}`) })),
    );
    const progress: RefreshProgressEvent[] = [];
    events.on('refresh.progress', (event) => progress.push(event));
    const result = await projection.refresh({ batchSize: 3 });
    expect(result).toMatchObject({ batches: 4, rowsRead: 10, newSnapshots: 10, completed: true });
    expect(progress.map((event) => event.rowsRead)).toEqual([3, 6, 9, 10]);
    expect((await snapshotsOf(db.sql, 'mission_snapshots')).size).toBe(10);
  });

  it('stops after maxBatches and continues from the cursor next time', async () => {
    await insertChanges(db.sql, Array.from({ length: 5 }, (_, index) => ({ userId: 'u-1', recordId: `m-${index}`, data: missionData(`m-${index}`) })));
    const first = await projection.refresh({ batchSize: 2, maxBatches: 1 });
    expect(first).toMatchObject({ rowsRead: 2, completed: false, reason: 'max-batches' });
    const rest = await projection.refresh({ batchSize: 2 });
    expect(rest).toMatchObject({ rowsRead: 3, completed: true });
  });

  it('never replays a record again after its delete, even when rows follow (B6)', async () => {
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'm-1', data: missionData('m-1') },
      { userId: 'u-1', recordId: 'm-1', op: 'update', data: { title: 'edited' } },
    ]);
    await projection.refresh();
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'm-1', op: 'delete', data: { deletedAt: '2026-04-22T10:00:00.000Z' } }]);
    const deleting = await projection.refresh();
    expect(deleting).toMatchObject({ rowsRead: 1, deletedSnapshots: 1 });
    expect((await snapshotsOf(db.sql, 'mission_snapshots')).has('u-1/m-1')).toBe(false);
    const idle = await projection.refresh();
    expect(idle).toMatchObject({ rowsRead: 0, rowsApplied: 0, updatedSnapshots: 0 });
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'm-1', op: 'update', data: { title: 'zombie' } }]);
    const after = await projection.refresh();
    expect(after).toMatchObject({ rowsRead: 1, rowsApplied: 0, rowsIgnored: 1, newSnapshots: 0 });
    expect((await snapshotsOf(db.sql, 'mission_snapshots')).has('u-1/m-1')).toBe(false);
  });

  it('tombstones a record deleted within the same batch it was created in', async () => {
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'a-1', table: 'agents', data: { name: 'A' } },
      { userId: 'u-1', recordId: 'a-1', table: 'agents', op: 'delete', data: {} },
      { userId: 'u-1', recordId: 'a-1', table: 'agents', op: 'insert', data: { name: 'B' } },
    ]);
    const result = await projection.refresh();
    expect(result).toMatchObject({ rowsApplied: 2, rowsIgnored: 1, newSnapshots: 0 });
    const [tombstone] = await db.sql`SELECT table_name, user_id, record_id FROM mana_ai.snapshot_tombstones`;
    expect(tombstone).toEqual({ table_name: 'agents', user_id: 'u-1', record_id: 'a-1' });
  });

  it('skips bad rows with an event and keeps refreshing when the log holds malformed data', async () => {
    const skipped: RowSkippedEvent[] = [];
    events.on('row.skipped', (event) => skipped.push(event));
    const [, badId] = await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'm-1', data: missionData('m-1') },
      { userId: 'u-1', recordId: 'm-1', op: 'update', data: ['not', 'an', 'object'] },
      { userId: 'u-1', recordId: 'm-1', op: 'update', data: { title: 'fine' }, fieldMeta: 'garbage' },
      { userId: 'u-2', recordId: 'm-2', data: 'just text' },
      { userId: 'u-2', recordId: 'm-3', data: missionData('m-3') },
    ]);
    const result = await projection.refresh();
    expect(result).toMatchObject({ rowsRead: 5, badRows: 3, completed: true });
    expect(skipped[0]).toEqual({ changeId: badId, table: 'aiMissions', userId: 'u-1', recordId: 'm-1', reason: 'data-not-object' });
    const missions = await snapshotsOf(db.sql, 'mission_snapshots');
    expect(missions.get('u-1/m-1')).toMatchObject({ title: 'fine' });
    expect(missions.has('u-2/m-2')).toBe(false);
    expect(missions.has('u-2/m-3')).toBe(true);
  });

  it('keeps refreshing other users when a record is too deep to store or its nextRunAt leaves the calendar', async () => {
    const skipped: RowSkippedEvent[] = [];
    events.on('row.skipped', (event) => skipped.push(event));
    // Built as text: JSON.stringify itself overflows on it, which is the point.
    const deep = `${'{"next":'.repeat(5000)}{"leaf":true}${'}'.repeat(5000)}`;
    const mission = JSON.stringify(missionData('m-deep', { cadence: null })).replace('"cadence":null', `"cadence":${deep}`);
    const [row] = await db.sql<{ id: string }[]>`
      INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_meta, client_id)
      VALUES ('ai', 'aiMissions', 'm-deep', 'u-1', 'insert', ${mission}::text::jsonb, '{}'::jsonb, 'test-client')
      RETURNING id::text AS id`;
    const deepId = row!.id;
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'm-edge', data: missionData('m-edge', { nextRunAt: '9999-12-31T23:59:59.999-02:00' }) },
      { userId: 'u-2', recordId: 'm-ok', data: missionData('m-ok') },
    ]);
    const result = await projection.refresh();
    expect(result).toMatchObject({ rowsRead: 3, badRows: 1, completed: true });
    expect(skipped).toEqual([{ changeId: deepId, table: 'aiMissions', userId: 'u-1', recordId: 'm-deep', reason: 'record-unserializable' }]);
    const missions = await snapshotsOf(db.sql, 'mission_snapshots');
    expect(missions.has('u-1/m-deep')).toBe(false);
    expect(missions.has('u-1/m-edge')).toBe(true);
    expect(missions.has('u-2/m-ok')).toBe(true);
    // The edge mission is never due; the other user's mission is.
    const claimed = await projection.claimDue({ owner: 'i-1', limit: 10 });
    expect(claimed.map((claim) => claim.mission.id)).toEqual(['m-ok']);
  });

  it('skips the refresh and says so when another instance holds the lock', async () => {
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'm-1', data: missionData('m-1') }]);
    const other = db.connect({ max: 1 });
    const holder = await openTransaction(other);
    await holder.run((tx) => tx`SELECT pg_advisory_xact_lock(${REFRESH_LOCK_KEY.toString()}::bigint)`);
    const result = await projection.refresh();
    await holder.end();
    expect(result).toMatchObject({ skipped: true, reason: 'locked', rowsRead: 0 });
    expect((await projection.refresh()).rowsRead).toBe(1);
  });

  it('waits for rows of transactions still open so the cursor never skips them', async () => {
    const slow = await openTransaction(db.connect({ max: 1 }));
    await slow.run(
      (tx) => tx`INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
                 VALUES ('ai', 'aiMissions', 'm-slow', 'u-1', 'insert', '{"state":"active"}', 'slow-client')`,
    );
    await new Promise((resolve) => setTimeout(resolve, 5));
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'm-fast', data: missionData('m-fast') }]);
    const during = await projection.refresh();
    expect(during.rowsRead).toBe(0);
    await slow.end();
    const after = await projection.refresh();
    expect(after.rowsRead).toBe(2);
    const missions = await snapshotsOf(db.sql, 'mission_snapshots');
    expect([...missions.keys()].sort()).toEqual(['u-1/m-fast', 'u-1/m-slow']);
  });

  it('reports how long an idle transaction has held the feed back, and 0 once it ends', async () => {
    const idle = await openTransaction(db.connect({ max: 1 }));
    await new Promise((resolve) => setTimeout(resolve, 1200));
    // As the least-privileged runner role, which cannot see other sessions itself.
    const held = await projection.feedLag();
    expect(held).toBeGreaterThanOrEqual(1);
    expect(held).toBeLessThan(60);
    await idle.end();
    expect(await projection.feedLag()).toBeLessThan(1);
  });

  it('merges again instead of overwriting when a write-back changes a mission during the refresh', async () => {
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'm-1', data: missionData('m-1') }]);
    await projection.refresh();
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'm-1', op: 'update', data: { title: 'from the log' }, fieldMeta: { title: '2026-04-21T00:00:00.000Z' } },
    ]);
    const concurrent = await openTransaction(db.connect({ max: 1 }));
    await concurrent.run(
      (tx) => tx`UPDATE mana_ai.mission_snapshots
                 SET record = record || '{"iterations": [{"id": "it-concurrent"}]}'::jsonb
                 WHERE mission_id = 'm-1'`,
    );
    const refreshing = projection.refresh();
    await new Promise((resolve) => setTimeout(resolve, 300));
    await concurrent.end();
    expect((await refreshing).rowsRead).toBe(1);
    const record = (await snapshotsOf(db.sql, 'mission_snapshots')).get('u-1/m-1');
    expect(record).toMatchObject({ title: 'from the log', iterations: [{ id: 'it-concurrent' }] });
  });

  it('parses nextRunAt into an instant when the stamp is not in toISOString form (B27)', async () => {
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'm-1', data: missionData('m-1', { nextRunAt: '2026-04-21T08:00:00+02:00' }) },
      { userId: 'u-1', recordId: 'm-2', data: missionData('m-2', { nextRunAt: '2026-04-21T06:00:00Z' }) },
      { userId: 'u-1', recordId: 'm-3', data: missionData('m-3', { nextRunAt: 'tomorrow' }) },
    ]);
    await projection.refresh();
    const rows = await db.sql<{ mission_id: string; due: string | null }[]>`
      SELECT mission_id, to_char(next_run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS due
      FROM mana_ai.mission_snapshots ORDER BY mission_id`;
    expect(rows).toEqual([
      { mission_id: 'm-1', due: '2026-04-21T06:00:00.000Z' },
      { mission_id: 'm-2', due: '2026-04-21T06:00:00.000Z' },
      { mission_id: 'm-3', due: null },
    ]);
  });

  it('keeps a soft-deleted agent out of loadAgents but merges later changes onto it', async () => {
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'a-1', table: 'agents', data: { name: 'Kept', state: 'active' } },
      { userId: 'u-1', recordId: 'a-2', table: 'agents', data: { name: 'Gone', state: 'active' } },
      { userId: 'u-1', recordId: 'a-2', table: 'agents', op: 'update', data: { deletedAt: '2026-04-20T00:00:00.000Z' } },
    ]);
    await projection.refresh();
    expect((await projection.loadAgents('u-1')).map((agent) => agent.name)).toEqual(['Kept']);
    expect(await projection.loadAgent('u-1', 'a-2')).toBeNull();
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'a-2', table: 'agents', op: 'update', data: { deletedAt: null } }]);
    await projection.refresh();
    expect(await projection.loadAgent('u-1', 'a-2')).toMatchObject({ name: 'Gone', maxConcurrentMissions: 1 });
  });

  it('skips rows whose user id is empty with a reason, and projects the others', async () => {
    const skipped: RowSkippedEvent[] = [];
    events.on('row.skipped', (event) => skipped.push(event));
    const [noUser, noUserAgent] = await insertChanges(db.sql, [
      { userId: '', recordId: 'm-nobody', data: missionData('m-nobody') },
      { userId: '', recordId: 'a-nobody', table: 'agents', data: { name: 'Nobody', state: 'active' } },
      { userId: 'u-1', recordId: 'm-1', data: missionData('m-1') },
    ]);
    const result = await projection.refresh();
    expect(result).toMatchObject({ rowsRead: 3, rowsApplied: 1, badRows: 2, newSnapshots: 1, usersProcessed: 1 });
    expect(skipped).toEqual([
      { changeId: noUser, table: 'aiMissions', userId: '', recordId: 'm-nobody', reason: 'empty-user-id' },
      { changeId: noUserAgent, table: 'agents', userId: '', recordId: 'a-nobody', reason: 'empty-user-id' },
    ]);
    expect([...(await snapshotsOf(db.sql, 'mission_snapshots')).keys()]).toEqual(['u-1/m-1']);
    expect((await snapshotsOf(db.sql, 'agent_snapshots')).size).toBe(0);
    const claimed = await projection.claimDue({ owner: 'i-1', limit: 10 });
    expect(claimed.map((claim) => `${claim.mission.userId}/${claim.mission.id}`)).toEqual(['u-1/m-1']);
  });
});

describe('the runner’s own rows', () => {
  /** Plans every due mission once: claim, then write an iteration as the dispatcher would. */
  async function planAll(): Promise<number> {
    const claims = await projection.claimDue({ owner: 'i-1', limit: 100 });
    for (const claim of claims) {
      const iterationId = await deriveIterationId(claim.mission.id, claim.dueSlot);
      await projection.writeIteration({
        userId: claim.mission.userId,
        missionId: claim.mission.id,
        dueSlot: claim.dueSlot,
        iteration: buildServerIteration({
          iterationId,
          calls: [{ toolName: 'create_task', params: { title: 'Einkaufen' } }],
          summary: 'Ich habe einen Task angelegt.',
          startedAt: '2026-04-21T06:01:00.000Z',
          finishedAt: '2026-04-21T06:01:02.345Z',
        }),
        actor: makeAgentActor({ agentId: 'a-1', displayName: 'Mana', missionId: claim.mission.id, iterationId, rationale: 'r' }),
        owner: claim.owner,
      });
    }
    return claims.length;
  }

  /** Every mission replayed from the whole log with the merge the webapp uses, keyed `<user>/<id>`. */
  async function fullReplay(): Promise<Map<string, Record<string, unknown> | null>> {
    type LogRow = { key: string; op: string; record_id: string; data: unknown; field_meta: unknown; stamp: string };
    const rows = await db.sql<LogRow[]>`
      SELECT user_id || '/' || record_id AS key, op, record_id, data, field_meta,
             to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS stamp
      FROM sync_changes WHERE app_id = 'ai' AND table_name = 'aiMissions' ORDER BY created_at, id`;
    const byKey = new Map<string, LogRow[]>();
    for (const row of rows) byKey.set(row.key, [...(byKey.get(row.key) ?? []), row]);
    return new Map(
      [...byKey].map(([key, changes]) => [
        key,
        mergeChanges(
          changes.map((row) => ({ op: row.op, recordId: row.record_id, data: row.data, fieldMeta: row.field_meta, createdAt: row.stamp })),
          'mission',
        ),
      ]),
    );
  }

  it('passes the rows of the runner’s write-backs without merging them again, and the snapshots still equal a full replay', async () => {
    const now = await databaseNowMs(db.sql);
    const missions = Array.from({ length: 6 }, (_, index) => ({
      userId: `u-${index % 2}`,
      recordId: `m-${index}`,
      data: missionData(`m-${index}`, { nextRunAt: isoAt(now, -60_000) }),
    }));
    await insertChanges(db.sql, missions);
    await projection.refresh();
    // A user edits one mission before its plan (the write-back merges the edit), another after it:
    // both edits are merged by the refresh, the runner's rows are not.
    await insertChanges(db.sql, [
      { userId: 'u-0', recordId: 'm-4', op: 'update', data: { objective: 'early' }, fieldMeta: { objective: isoAt(now, 500) } },
    ]);
    expect(await planAll()).toBe(6);
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'm-3', op: 'update', data: { title: 'edited' }, fieldMeta: { title: isoAt(now, 1000) } },
    ]);
    const after = await projection.refresh();
    expect(after).toMatchObject({ rowsRead: 8, rowsAlreadyApplied: 6, rowsApplied: 2, updatedSnapshots: 2, usersProcessed: 2 });
    // Every snapshot is past all of its rows, so a write-back reads none of them again.
    const [behind] = await db.sql<{ count: string }[]>`
      SELECT count(*)::text AS count FROM mana_ai.mission_snapshots s
      WHERE s.last_applied_at IS DISTINCT FROM (
        SELECT max(c.created_at) FROM sync_changes c WHERE c.user_id = s.user_id AND c.record_id = s.mission_id)`;
    expect(behind?.count).toBe('0');
    const replayed = await fullReplay();
    const stored = await snapshotsOf(db.sql, 'mission_snapshots');
    expect(stored.size).toBe(6);
    for (const [key, record] of stored) expect({ key, record: { id: key.split('/')[1], ...record } }).toEqual({ key, record: replayed.get(key) });
    expect(stored.get('u-1/m-3')).toMatchObject({ title: 'edited', iterations: [expect.objectContaining({ source: 'server' })] });
    expect(stored.get('u-0/m-4')).toMatchObject({ objective: 'early', iterations: [expect.objectContaining({ source: 'server' })] });
    // Rebuilt from the start of the log, the snapshots hold none of the runner's rows yet: all are merged.
    await db.sql`TRUNCATE mana_ai.mission_snapshots, mana_ai.projection_cursors`;
    const rebuilt = await projection.refresh();
    expect(rebuilt).toMatchObject({ rowsRead: 14, rowsAlreadyApplied: 0, rowsApplied: 14, newSnapshots: 6 });
    expect(await snapshotsOf(db.sql, 'mission_snapshots')).toEqual(stored);
  });

  it('merges a runner row its snapshot does not hold (a write-back whose snapshot update was lost)', async () => {
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'm-1', data: missionData('m-1') }]);
    await projection.refresh();
    const stamp = '2026-04-21T06:01:02.345Z';
    await db.sql`
      INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_meta, client_id)
      VALUES ('ai', 'aiMissions', 'm-1', 'u-1', 'update',
              ${JSON.stringify({ iterations: [{ id: 'it-lost' }], nextRunAt: '2026-04-21T07:00:00.000Z' })}::text::jsonb,
              ${JSON.stringify({ iterations: stamp, nextRunAt: stamp })}::text::jsonb, 'mana-ai-runner')`;
    const result = await projection.refresh();
    expect(result).toMatchObject({ rowsRead: 1, rowsAlreadyApplied: 0, rowsApplied: 1, updatedSnapshots: 1 });
    expect((await snapshotsOf(db.sql, 'mission_snapshots')).get('u-1/m-1')).toMatchObject({
      iterations: [{ id: 'it-lost' }],
      nextRunAt: '2026-04-21T07:00:00.000Z',
    });
  });
});


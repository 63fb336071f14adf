import { type ManualClock, createManualClock } from '@mana-ai/core';
import { type TestDatabase, createTestDatabase } from '@mana-ai/test-postgres';
import type { Sql } from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { connectAsRunner, insertChanges, missionData, snapshotsOf } from '../test/helpers.js';
import type { ClaimedMission } from './claims.js';
import { deriveIterationId } from './iteration-id.js';
import { type Projection, createProjection } from './projection.js';

let db: TestDatabase;
let runner: Sql;
let clock: ManualClock;
let projection: Projection;

const PLAN = { summary: 'Ich habe einen Task angelegt.', steps: [{ toolName: 'create_task', params: { title: 'Einkaufen' } }] };

beforeAll(async () => {
  db = await createTestDatabase();
  runner = await connectAsRunner(db);
});
afterAll(() => db.drop());

beforeEach(async () => {
  await db.sql`TRUNCATE sync_changes, mana_ai.mission_snapshots, mana_ai.agent_snapshots, mana_ai.snapshot_tombstones, mana_ai.projection_cursors, mana_ai.token_usage`;
  clock = createManualClock('2026-04-21T06:01:02.345Z');
  projection = createProjection({ sql: runner, clock });
});

async function claimOne(overrides: Record<string, unknown> = {}): Promise<ClaimedMission> {
  await insertChanges(db.sql, [
    {
      userId: 'u-1',
      recordId: 'm-1',
      data: missionData('m-1', { objective: 'Plane meine Woche', agentId: 'a-1', iterations: [{ id: 'old', plan: [] }], ...overrides }),
    },
  ]);
  await projection.refresh();
  const [claim] = await projection.claimDue({ owner: 'i-1', limit: 1 });
  if (!claim) throw new Error('nothing due');
  return claim;
}

function write(claim: ClaimedMission, extra: Partial<Parameters<Projection['writeIteration']>[0]> = {}) {
  return projection.writeIteration({
    userId: claim.mission.userId,
    missionId: claim.mission.id,
    dueSlot: claim.dueSlot,
    plan: PLAN,
    agent: { id: 'a-1', name: 'Mana' },
    owner: claim.owner,
    ...extra,
  });
}

describe('writeIteration', () => {
  it('appends one sync_changes row shaped like the upstream write-back, advancing nextRunAt', async () => {
    const claim = await claimOne();
    const result = await write(claim, { tokenUsage: { agentId: 'a-1', tokens: 1234 } });
    const iterationId = await deriveIterationId('m-1', '2026-04-21T06:00:00.000Z');
    expect(result).toMatchObject({ iterationId, duplicate: false, nextRunAt: '2026-04-21T07:01:02.345Z' });
    const rows = await db.sql`
      SELECT app_id, table_name, record_id, user_id, op, data, field_meta, client_id, schema_version, actor, origin, space_id
      FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    expect(rows).toHaveLength(1);
    expect(rows[0]).toEqual({
      app_id: 'ai',
      table_name: 'aiMissions',
      record_id: 'm-1',
      user_id: 'u-1',
      op: 'update',
      client_id: 'mana-ai-runner',
      schema_version: 1,
      origin: 'agent',
      space_id: null,
      field_meta: { iterations: '2026-04-21T06:01:02.345Z', nextRunAt: '2026-04-21T06:01:02.345Z' },
      actor: {
        kind: 'ai',
        principalId: 'a-1',
        displayName: 'Mana',
        missionId: 'm-1',
        iterationId,
        rationale: 'Plane meine Woche',
      },
      data: {
        nextRunAt: '2026-04-21T07:01:02.345Z',
        iterations: [
          { id: 'old', plan: [] },
          {
            id: iterationId,
            startedAt: '2026-04-21T06:01:02.345Z',
            finishedAt: '2026-04-21T06:01:02.345Z',
            plan: [
              {
                id: `${iterationId}-0`,
                summary: 'create_task',
                intent: { kind: 'toolCall', toolName: 'create_task', params: { title: 'Einkaufen' } },
                status: 'planned',
              },
            ],
            summary: 'Ich habe einen Task angelegt.',
            overallStatus: 'awaiting-review',
            source: 'server',
          },
        ],
      },
    });
    const [raw] = await db.sql<{ data: string }[]>`SELECT data::text AS data FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    expect(raw?.data).toContain('"startedAt": "2026-04-21T06:01:02.345Z", "finishedAt"');
    const [snapshot] = await db.sql`SELECT lease_owner, lease_until, record->'iterations'->1->>'id' AS last FROM mana_ai.mission_snapshots`;
    expect(snapshot).toEqual({ lease_owner: null, lease_until: null, last: iterationId });
    expect(await projection.tokenUsageLast24h('u-1', 'a-1')).toBe(1234);
  });

  it('does not make a planned mission due again before its next slot', async () => {
    const claim = await claimOne();
    await write(claim);
    expect(await projection.claimDue({ owner: 'i-2', limit: 10 })).toEqual([]);
    clock.set('2026-04-21T07:01:02.344Z');
    expect(await projection.claimDue({ owner: 'i-2', limit: 10 })).toEqual([]);
    // The refresh reads the runner's own row back: the snapshot must not change, nothing becomes due.
    const before = await snapshotsOf(db.sql, 'mission_snapshots');
    expect((await projection.refresh()).rowsRead).toBe(1);
    expect(await snapshotsOf(db.sql, 'mission_snapshots')).toEqual(before);
    expect(await projection.claimDue({ owner: 'i-2', limit: 10 })).toEqual([]);
    clock.set('2026-04-21T07:01:02.345Z');
    const [again] = await projection.claimDue({ owner: 'i-2', limit: 10 });
    expect(again?.dueSlot).toBe('2026-04-21T07:01:02.345Z');
  });

  it('keeps a client iteration edit that the snapshot has not caught up with yet (B20)', async () => {
    const claim = await claimOne();
    await insertChanges(db.sql, [
      {
        userId: 'u-1',
        recordId: 'm-1',
        op: 'update',
        data: { iterations: [{ id: 'old', plan: [], overallStatus: 'approved' }] },
        fieldMeta: { iterations: '2026-04-21T06:00:30.000Z' },
      },
    ]);
    const result = await write(claim);
    const [row] = await db.sql<{ ids: string[]; status: string }[]>`
      SELECT jsonb_path_query_array(data, '$.iterations[*].id') AS ids, data->'iterations'->0->>'overallStatus' AS status
      FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    expect(row).toEqual({ ids: ['old', result.iterationId], status: 'approved' });
  });

  it('recognises a retried write for the same slot and inserts nothing', async () => {
    const claim = await claimOne();
    const first = await write(claim, { tokenUsage: { agentId: 'a-1', tokens: 10 } });
    clock.advance(5_000);
    const retry = await write(claim, { tokenUsage: { agentId: 'a-1', tokens: 10 } });
    expect(retry).toMatchObject({ iterationId: first.iterationId, duplicate: true, nextRunAt: first.nextRunAt });
    const [count] = await db.sql<{ n: string }[]>`SELECT count(*)::text AS n FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    expect(count?.n).toBe('1');
    expect(await projection.tokenUsageLast24h('u-1', 'a-1')).toBe(10);
  });

  it('schedules daily cadences in the mission time zone, else the default zone', async () => {
    const claim = await claimOne({ cadence: { kind: 'daily', atHour: 8, atMinute: 0 }, timezone: 'America/New_York' });
    expect((await write(claim)).nextRunAt).toBe('2026-04-21T12:00:00.000Z');
    await db.sql`TRUNCATE sync_changes, mana_ai.mission_snapshots, mana_ai.projection_cursors`;
    const berlin = await claimOne({ cadence: { kind: 'daily', atHour: 8, atMinute: 0 } });
    expect((await write(berlin)).nextRunAt).toBe('2026-04-21T06:00:00.000Z'.replace('21T06', '22T06'));
  });

  it('plans a manual mission once and not again until the user sets a new next run', async () => {
    const claim = await claimOne({ cadence: { kind: 'manual' } });
    expect((await write(claim)).nextRunAt).toBeNull();
    clock.advance(365 * 86_400_000);
    await projection.refresh();
    expect(await projection.claimDue({ owner: 'i-1', limit: 10 })).toEqual([]);
    await insertChanges(db.sql, [
      {
        userId: 'u-1',
        recordId: 'm-1',
        op: 'update',
        data: { nextRunAt: '2026-05-01T00:00:00.000Z' },
        fieldMeta: { nextRunAt: '2026-04-30T00:00:00.000Z' },
      },
    ]);
    await projection.refresh();
    expect((await projection.claimDue({ owner: 'i-1', limit: 10 })).map((c) => c.dueSlot)).toEqual(['2026-05-01T00:00:00.000Z']);
  });

  it('writes for the legacy agent and shows the result in the operator view', async () => {
    const claim = await claimOne({ agentId: undefined });
    const result = await write(claim, { agent: undefined, plan: { summary: '', steps: [] } });
    const [row] = await db.sql<{ actor: Record<string, unknown> }[]>`SELECT actor FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    expect(row?.actor).toMatchObject({ principalId: 'legacy:ai-default', displayName: 'Mana' });
    expect(result.iteration.overallStatus).toBe('approved');
    const [overview] = await projection.listUserMissions('u-1');
    expect(overview).toMatchObject({
      state: 'active',
      nextRunAt: result.nextRunAt,
      dueAt: result.nextRunAt,
      lease: null,
      deleted: false,
      lastIteration: { id: result.iterationId, source: 'server' },
    });
  });

  it('shows a live lease in the operator view', async () => {
    await claimOne();
    const [overview] = await projection.listUserMissions('u-1');
    expect(overview?.lease).toEqual({ owner: 'i-1', until: '2026-04-21T06:11:02.345Z' });
    expect(await projection.listUserMissions('u-2')).toEqual([]);
  });

  it('fails with PROJECTION_MISSION_NOT_FOUND when the mission was deleted meanwhile', async () => {
    const claim = await claimOne();
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'm-1', op: 'delete', data: {} }]);
    await projection.refresh();
    await expect(write(claim)).rejects.toMatchObject({ code: 'PROJECTION_MISSION_NOT_FOUND' });
  });
});

import { type AiActor, type MissionCadence, type MissionIteration, buildServerIteration, makeAgentActor, nextRunAfter } from '@mana-ai/core';
import { type TestDatabase, createTestDatabase, runnerUrl } from '@mana-ai/test-postgres';
import type { Sql } from 'postgres';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { clearProjection, connectAsRunner, databaseNowMs, insertChanges, isoAt, missionData, snapshotsOf } from '../test/helpers.js';
import type { ClaimedMission } from './claims.js';
import { deriveIterationId } from './iteration-id.js';
import { mergeChanges } from './lww.js';
import { type Projection, createProjection } from './projection.js';
import type { WriteIterationInput } from './write-back.js';

let db: TestDatabase;
let runner: Sql;
let projection: Projection;
/** The database's now when the test began. */
let t0: number;

const MINUTE = 60_000;
const CALLS = [{ toolName: 'create_task', params: { title: 'Einkaufen' } }];
const STAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

beforeAll(async () => {
  db = await createTestDatabase();
  runner = await connectAsRunner(db);
});
afterAll(() => db.drop());

beforeEach(async () => {
  await clearProjection(db.sql);
  projection = createProjection({ sql: runner });
  t0 = await databaseNowMs(db.sql);
});
afterEach(() => {
  vi.useRealTimers();
});

/** Projects mission m-1 (due a minute ago, agent a-1) and claims it. */
async function claimOne(overrides: Record<string, unknown> = {}, claimer: Projection = projection): Promise<ClaimedMission> {
  await insertChanges(db.sql, [
    {
      userId: 'u-1',
      recordId: 'm-1',
      data: missionData('m-1', {
        objective: 'Plane meine Woche',
        agentId: 'a-1',
        iterations: [{ id: 'old', plan: [] }],
        nextRunAt: isoAt(t0, -MINUTE),
        ...overrides,
      }),
    },
  ]);
  await claimer.refresh();
  const [claim] = await claimer.claimDue({ owner: 'i-1', limit: 1 });
  if (!claim) throw new Error('nothing due');
  return claim;
}

/** What core builds for a planned run: the iteration and the actor, once. */
async function built(claim: ClaimedMission, calls = CALLS, agent = { id: 'a-1', name: 'Mana' }): Promise<{ iteration: MissionIteration; actor: AiActor }> {
  const iterationId = await deriveIterationId(claim.mission.id, claim.dueSlot);
  const iteration = buildServerIteration({
    iterationId,
    calls,
    summary: 'Ich habe einen Task angelegt.',
    startedAt: '2026-04-21T06:01:00.000Z',
    finishedAt: '2026-04-21T06:01:02.345Z',
  });
  const actor = makeAgentActor({ agentId: agent.id, displayName: agent.name, missionId: claim.mission.id, iterationId, rationale: claim.mission.objective });
  return { iteration, actor };
}

async function write(claim: ClaimedMission, extra: Partial<WriteIterationInput> = {}, writer: Projection = projection) {
  return writer.writeIteration({
    userId: claim.mission.userId,
    missionId: claim.mission.id,
    dueSlot: claim.dueSlot,
    ...(await built(claim)),
    owner: claim.owner,
    ...extra,
  });
}

describe('writeIteration', () => {
  it('appends core’s iteration and actor as given in one row, stamped and advanced on the database clock', async () => {
    const claim = await claimOne();
    const { iteration, actor } = await built(claim);
    const before = await databaseNowMs(db.sql);
    const result = await write(claim, { iteration, actor, tokenUsage: { agentId: 'a-1', tokens: 1234 } });
    const after = await databaseNowMs(db.sql);
    const rows = await db.sql<{ data: Record<string, unknown>; field_meta: Record<string, string>; actor: unknown; [key: string]: unknown }[]>`
      SELECT app_id, table_name, record_id, user_id, op, data, field_meta, client_id, schema_version, actor, origin, space_id
      FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    const stamp = row.field_meta.iterations!;
    expect(stamp).toMatch(STAMP);
    expect(Date.parse(stamp)).toBeGreaterThanOrEqual(before - 1);
    expect(Date.parse(stamp)).toBeLessThanOrEqual(after);
    const nextRunAt = isoAt(Date.parse(stamp), 60 * MINUTE);
    expect(result).toMatchObject({ iterationId: iteration.id, duplicate: false, nextRunAtWritten: true, nextRunAt, iteration });
    expect(row).toEqual({
      app_id: 'ai',
      table_name: 'aiMissions',
      record_id: 'm-1',
      user_id: 'u-1',
      op: 'update',
      client_id: 'mana-ai-runner',
      schema_version: 1,
      origin: 'agent',
      space_id: null,
      field_meta: { iterations: stamp, nextRunAt: stamp },
      actor: { ...actor },
      data: { nextRunAt, iterations: [{ id: 'old', plan: [] }, { ...iteration }] },
    });
    const [raw] = await db.sql<{ data: string }[]>`SELECT data::text AS data FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    expect(raw?.data).toContain('"startedAt": "2026-04-21T06:01:00.000Z", "finishedAt"');
    const [snapshot] = await db.sql`SELECT lease_owner, lease_until, record->'iterations'->1->>'id' AS last FROM mana_ai.mission_snapshots`;
    expect(snapshot).toEqual({ lease_owner: null, lease_until: null, last: iteration.id });
    expect(await projection.tokenUsageLast24h('u-1', 'a-1')).toBe(1234);
    const [usage] = await db.sql<{ ts: Date }[]>`SELECT ts FROM mana_ai.token_usage`;
    expect(usage?.ts.toISOString()).toBe(stamp);
  });

  it('stamps no later than the database’s now and plans the next run from it when the instance clock runs ahead', async () => {
    const claim = await claimOne();
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 5 * MINUTE);
    const result = await write(claim);
    vi.useRealTimers();
    const after = await databaseNowMs(db.sql);
    const [row] = await db.sql<{ field_meta: Record<string, string> }[]>`SELECT field_meta FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    expect(Date.parse(row!.field_meta.nextRunAt!)).toBeLessThanOrEqual(after);
    expect(Date.parse(result.nextRunAt!)).toBeLessThanOrEqual(after + 60 * MINUTE);
  });

  it('does not make a planned mission due again before its next slot', async () => {
    const claim = await claimOne({ cadence: { kind: 'interval', everyMinutes: 60 } });
    const result = await write(claim);
    expect(await projection.claimDue({ owner: 'i-2', limit: 10 })).toEqual([]);
    // The refresh reads the runner's own row back: the snapshot must not change, nothing becomes due.
    const before = await snapshotsOf(db.sql, 'mission_snapshots');
    expect((await projection.refresh()).rowsRead).toBe(1);
    expect(await snapshotsOf(db.sql, 'mission_snapshots')).toEqual(before);
    expect(await projection.claimDue({ owner: 'i-2', limit: 10 })).toEqual([]);
    const next = await projection.nextDueInMs();
    expect(next).toBeGreaterThan(59 * MINUTE);
    expect(next).toBeLessThanOrEqual(Date.parse(result.nextRunAt!) - t0);
  });

  it('keeps a user’s nextRunAt edit made while the mission ran and writes only the iteration', async () => {
    const claim = await claimOne();
    // "Run now" while the plan is in flight: the device stamps nextRunAt after the claim.
    const runNow = isoAt(t0);
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'm-1', op: 'update', data: { nextRunAt: runNow }, fieldMeta: { nextRunAt: isoAt(t0, 1) } },
    ]);
    const result = await write(claim);
    expect(result).toMatchObject({ duplicate: false, nextRunAtWritten: false, nextRunAt: runNow });
    const [row] = await db.sql<{ keys: string[]; meta: string[] }[]>`
      SELECT ARRAY(SELECT jsonb_object_keys(data) ORDER BY 1) AS keys, ARRAY(SELECT jsonb_object_keys(field_meta) ORDER BY 1) AS meta
      FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    expect(row).toEqual({ keys: ['iterations'], meta: ['iterations'] });
    // The edit is the mission's state everywhere, and the mission is due again for the new slot.
    await projection.refresh();
    expect(await projection.replayRecord('u-1', 'ai', 'aiMissions', 'm-1')).toMatchObject({ nextRunAt: runNow });
    const [again] = await projection.claimDue({ owner: 'i-2', limit: 10 });
    expect(again?.dueSlot).toBe(runNow);
    expect(again?.mission.iterations.map((iteration) => iteration.id)).toEqual(['old', result.iterationId]);
  });

  it('keeps a reschedule the snapshot already holds when it differs from the claimed slot', async () => {
    const claim = await claimOne();
    const later = isoAt(t0, 3 * 60 * MINUTE);
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'm-1', op: 'update', data: { nextRunAt: later }, fieldMeta: { nextRunAt: isoAt(t0, 1) } },
    ]);
    await projection.refresh();
    const result = await write(claim);
    expect(result).toMatchObject({ nextRunAtWritten: false, nextRunAt: later });
    const [snapshot] = await db.sql<{ next: Date }[]>`SELECT next_run_at AS next FROM mana_ai.mission_snapshots`;
    expect(snapshot?.next.toISOString()).toBe(later);
  });

  it('keeps a client iteration edit that the snapshot has not caught up with yet (B20)', async () => {
    const claim = await claimOne();
    await insertChanges(db.sql, [
      {
        userId: 'u-1',
        recordId: 'm-1',
        op: 'update',
        data: { iterations: [{ id: 'old', plan: [], overallStatus: 'approved' }] },
        fieldMeta: { iterations: isoAt(t0, -30_000) },
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
    const retry = await write(claim, { tokenUsage: { agentId: 'a-1', tokens: 10 } });
    expect(retry).toMatchObject({ iterationId: first.iterationId, duplicate: true, nextRunAtWritten: false, nextRunAt: first.nextRunAt });
    const [count] = await db.sql<{ n: string }[]>`SELECT count(*)::text AS n FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    expect(count?.n).toBe('1');
    expect(await projection.tokenUsageLast24h('u-1', 'a-1')).toBe(10);
  });

  it('refuses an iteration or actor that is not the one of this mission and due slot', async () => {
    const claim = await claimOne();
    const { iteration, actor } = await built(claim);
    const other = await deriveIterationId('m-1', isoAt(t0));
    await expect(write(claim, { iteration: { ...iteration, id: other } })).rejects.toMatchObject({ code: 'PROJECTION_INVALID_ARGUMENT' });
    await expect(write(claim, { actor: { ...actor, iterationId: other } })).rejects.toMatchObject({ code: 'PROJECTION_INVALID_ARGUMENT' });
    await expect(write(claim, { actor: { ...actor, missionId: 'm-2' } })).rejects.toMatchObject({ code: 'PROJECTION_INVALID_ARGUMENT' });
    await expect(write(claim, { dueSlot: 'soon' })).rejects.toMatchObject({ code: 'PROJECTION_INVALID_ARGUMENT' });
    const [count] = await db.sql<{ n: string }[]>`SELECT count(*)::text AS n FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    expect(count?.n).toBe('0');
  });

  it('gives a cron mission without nextRunAt its first slot and writes the next one back in its zone', async () => {
    const cron: MissionCadence = { kind: 'cron', expression: '*/5 * * * *' };
    const createdAt = isoAt(t0, -12 * MINUTE);
    const data = missionData('m-1', { objective: 'Plane', agentId: 'a-1', cadence: cron, timezone: 'Asia/Kolkata', nextRunAt: undefined });
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'm-1', data, createdAt }]);
    await projection.refresh();
    const [projected] = await db.sql<{ due: string }[]>`
      SELECT to_char(next_run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS due FROM mana_ai.mission_snapshots`;
    // First five-minute boundary (UTC+05:30 keeps them on :00/:05…) after the mission's log row.
    const first = nextRunAfter(cron, Date.parse(createdAt), { timeZone: 'Asia/Kolkata' })!.toISOString();
    expect(projected?.due).toBe(first);
    expect(Date.parse(first) % (5 * MINUTE)).toBe(0);
    expect((await snapshotsOf(db.sql, 'mission_snapshots')).get('u-1/m-1')?.nextRunAt).toBeUndefined();

    const [claim] = await projection.claimDue({ owner: 'i-1', limit: 1 });
    expect(claim?.dueSlot).toBe(first);
    const result = await write(claim!);
    const [row] = await db.sql<{ next: string; stamp: string }[]>`
      SELECT data->>'nextRunAt' AS next, field_meta->>'nextRunAt' AS stamp FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    const expected = nextRunAfter(cron, Date.parse(row!.stamp), { timeZone: 'Asia/Kolkata' })!.toISOString();
    expect(result).toMatchObject({ duplicate: false, nextRunAtWritten: true, nextRunAt: expected });
    expect(row?.next).toBe(expected);
    expect(Date.parse(expected)).toBeGreaterThan(Date.parse(row!.stamp));
    expect(Date.parse(expected) - Date.parse(row!.stamp)).toBeLessThanOrEqual(5 * MINUTE);
    const [after] = await db.sql<{ due: string | null; leased: boolean }[]>`
      SELECT to_char(next_run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS due, lease_owner IS NOT NULL AS leased
      FROM mana_ai.mission_snapshots`;
    expect(after).toEqual({ due: expected, leased: false });
  });

  it('never schedules a mission whose cadence is not a valid one and that has no nextRunAt', async () => {
    const cadences = [{ kind: 'cron', expression: '0 9 * *' }, { kind: 'dayly', atHour: 8 }, { kind: 'manual' }];
    await insertChanges(
      db.sql,
      cadences.map((cadence, index) => ({
        userId: 'u-1',
        recordId: `m-${index}`,
        data: missionData(`m-${index}`, { cadence, nextRunAt: undefined }),
        createdAt: isoAt(t0, -60 * MINUTE),
      })),
    );
    await projection.refresh();
    expect(await db.sql`SELECT mission_id FROM mana_ai.mission_snapshots WHERE next_run_at IS NOT NULL`).toEqual([]);
    expect(await db.sql`SELECT mission_id FROM mana_ai.mission_snapshots`).toHaveLength(3);
  });

  it('schedules daily cadences in the mission time zone, else the default zone', async () => {
    const daily: MissionCadence = { kind: 'daily', atHour: 8, atMinute: 0 };
    const claim = await claimOne({ cadence: daily, timezone: 'America/New_York' });
    const result = await write(claim);
    const [row] = await db.sql<{ stamp: string }[]>`SELECT field_meta->>'nextRunAt' AS stamp FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    expect(result.nextRunAt).toBe(nextRunAfter(daily, Date.parse(row!.stamp), { timeZone: 'America/New_York' })?.toISOString());
    await db.sql`TRUNCATE sync_changes, mana_ai.mission_snapshots, mana_ai.projection_cursors`;
    const berlin = await claimOne({ cadence: daily });
    const inBerlin = await write(berlin);
    const [second] = await db.sql<{ stamp: string }[]>`SELECT field_meta->>'nextRunAt' AS stamp FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    expect(inBerlin.nextRunAt).toBe(nextRunAfter(daily, Date.parse(second!.stamp), { timeZone: 'Europe/Berlin' })?.toISOString());
    expect(inBerlin.nextRunAt).not.toBe(result.nextRunAt);
  });

  it('plans a manual mission once and not again until the user sets a new next run', async () => {
    const claim = await claimOne({ cadence: { kind: 'manual' } });
    expect((await write(claim)).nextRunAt).toBeNull();
    await projection.refresh();
    expect(await projection.claimDue({ owner: 'i-1', limit: 10 })).toEqual([]);
    expect(await projection.nextDueInMs()).toBeNull();
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'm-1', op: 'update', data: { nextRunAt: isoAt(t0, -1000) }, fieldMeta: { nextRunAt: isoAt(t0, 10_000) } },
    ]);
    await projection.refresh();
    expect((await projection.claimDue({ owner: 'i-1', limit: 10 })).map((c) => c.dueSlot)).toEqual([isoAt(t0, -1000)]);
  });

  it('writes for the legacy agent and shows the result in the operator view', async () => {
    const claim = await claimOne({ agentId: undefined });
    const { iteration, actor } = await built(claim, [], { id: 'legacy:ai-default', name: 'Mana' });
    const result = await write(claim, { iteration, actor });
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
    const claim = await claimOne();
    const [overview] = await projection.listUserMissions('u-1');
    expect(overview?.lease).toEqual({ owner: 'i-1', until: claim.leaseUntil });
    expect(await projection.listUserMissions('u-2')).toEqual([]);
  });

  it('writes in two statements: one read and one conditional write, no explicit transaction', async () => {
    const statements: string[] = [];
    const counted = db.connect({ url: await runnerUrl(db), max: 1, debug: (_connection, query) => statements.push(query) });
    await counted`SELECT 1`;
    const claim = await claimOne();
    statements.length = 0;
    const result = await write(claim, { tokenUsage: { agentId: 'a-1', tokens: 10 } }, createProjection({ sql: counted }));
    expect(result).toMatchObject({ duplicate: false, nextRunAtWritten: true });
    expect(statements.map((query) => /mana_ai\.(\w+)\(/.exec(query)?.[1] ?? query.trim())).toEqual(['write_back_read', 'write_back_write']);
    expect(await projection.tokenUsageLast24h('u-1', 'a-1')).toBe(10);
    const [lease] = await db.sql<{ owner: string | null }[]>`SELECT lease_owner AS owner FROM mana_ai.mission_snapshots`;
    expect(lease?.owner).toBeNull();
  });

  // The user's "run now" lands after the write-back read the mission and before it writes: the
  // write finds the mission changed, reads and merges again, and keeps the user's nextRunAt.
  it.each([
    ['in the log only', false],
    ['in the log and in the snapshot', true],
  ])('reads again when a user edit lands between its read and its write (%s)', async (_case, refreshed) => {
    const claim = await claimOne();
    // The runner's client, paused before the first conditional write until `resume`.
    let resume!: () => void;
    const resumed = new Promise<void>((resolve) => {
      resume = resolve;
    });
    let paused!: () => void;
    const reachedWrite = new Promise<void>((resolve) => {
      paused = resolve;
    });
    let writes = 0;
    const gated = new Proxy(runner, {
      apply(target, thisArg, args: Parameters<Sql>) {
        const [strings] = args as unknown as [TemplateStringsArray];
        if (!strings.join('').includes('write_back_write') || writes++ > 0) return Reflect.apply(target, thisArg, args);
        paused();
        return resumed.then(() => Reflect.apply(target, thisArg, args));
      },
    });
    const writing = write(claim, {}, createProjection({ sql: gated }));
    await reachedWrite;
    const runNow = isoAt(t0);
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'm-1', op: 'update', data: { nextRunAt: runNow }, fieldMeta: { nextRunAt: isoAt(t0, 1) } },
    ]);
    if (refreshed) expect((await projection.refresh()).rowsRead).toBe(1);
    resume();
    const result = await writing;
    expect(result).toMatchObject({ duplicate: false, nextRunAtWritten: false, nextRunAt: runNow });
    const rows = await db.sql<{ keys: string[] }[]>`
      SELECT ARRAY(SELECT jsonb_object_keys(data) ORDER BY 1) AS keys FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    expect(rows).toEqual([{ keys: ['iterations'] }]);
    await projection.refresh();
    const [snapshot] = await db.sql<{ next: Date; ids: string[] }[]>`
      SELECT next_run_at AS next, jsonb_path_query_array(record, '$.iterations[*].id') AS ids FROM mana_ai.mission_snapshots`;
    expect(snapshot?.next.toISOString()).toBe(runNow);
    expect(snapshot?.ids).toEqual(['old', result.iterationId]);
    expect(writes).toBe(2);
  });

  it('gives up with PROJECTION_WRITE_CONFLICT after five reads when the mission changes before every write, writing nothing', async () => {
    const claim = await claimOne();
    let writes = 0;
    // Every conditional write finds a user's row that arrived after its read.
    const busy = new Proxy(runner, {
      apply(target, thisArg, args: Parameters<Sql>) {
        const [strings] = args as unknown as [TemplateStringsArray];
        if (!strings.join('').includes('write_back_write')) return Reflect.apply(target, thisArg, args);
        writes++;
        const edit = { userId: 'u-1', recordId: 'm-1', op: 'update' as const, data: { title: `edit ${writes}` }, fieldMeta: { title: isoAt(t0, writes) } };
        return insertChanges(db.sql, [edit]).then(() => Reflect.apply(target, thisArg, args));
      },
    });
    await expect(write(claim, {}, createProjection({ sql: busy }))).rejects.toMatchObject({
      code: 'PROJECTION_WRITE_CONFLICT',
      details: { missionId: 'm-1', attempts: 5 },
    });
    expect(writes).toBe(5);
    const [written] = await db.sql<{ count: string }[]>`SELECT count(*)::text AS count FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    expect(written?.count).toBe('0');
  });

  it('fails with PROJECTION_MISSION_NOT_FOUND when the mission was deleted meanwhile', async () => {
    const claim = await claimOne();
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'm-1', op: 'delete', data: {} }]);
    await projection.refresh();
    await expect(write(claim)).rejects.toMatchObject({ code: 'PROJECTION_MISSION_NOT_FOUND' });
  });
});

/** A runner client that records the name of every `mana_ai` function it calls, and a projection over it. */
async function counted(): Promise<{ projection: Projection; calls: () => string[] }> {
  const statements: string[] = [];
  const sql = db.connect({ url: await runnerUrl(db), max: 1, debug: (_connection, query) => statements.push(query) });
  await sql`SELECT 1`;
  statements.length = 0;
  return { projection: createProjection({ sql }), calls: () => statements.map((query) => /mana_ai\.(\w+)\(/.exec(query)?.[1] ?? query.trim()) };
}

/** Mission m-1 replayed from the whole log with the webapp's merge. */
async function replayedM1(): Promise<Record<string, unknown> | null> {
  const rows = await db.sql<{ op: string; data: unknown; field_meta: unknown; stamp: string }[]>`
    SELECT op, data, field_meta, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS stamp
    FROM sync_changes WHERE user_id = 'u-1' AND record_id = 'm-1' ORDER BY created_at, id`;
  return mergeChanges(
    rows.map((row) => ({ op: row.op, recordId: 'm-1', data: row.data, fieldMeta: row.field_meta, createdAt: row.stamp })),
    'mission',
  );
}

/** Refreshes, then expects the stored snapshot of m-1 to equal a full replay of its log; returns it. */
async function expectSnapshotIsReplay(): Promise<Record<string, unknown>> {
  await projection.refresh();
  const stored = (await snapshotsOf(db.sql, 'mission_snapshots')).get('u-1/m-1');
  expect({ id: 'm-1', ...stored }).toEqual(await replayedM1());
  return stored!;
}

/** Every `field_meta` stamp the runner wrote and every token usage time, as epoch ms. */
async function runnerStampsMs(): Promise<number[]> {
  const rows = await db.sql<{ stamp: string }[]>`
    SELECT m.value AS stamp FROM sync_changes c, jsonb_each_text(c.field_meta) AS m WHERE c.client_id = 'mana-ai-runner'
    UNION ALL SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') FROM mana_ai.token_usage`;
  return rows.map((row) => Date.parse(row.stamp));
}

describe('writeIteration with the snapshot its claim read (the fast path)', () => {
  it('writes in one statement, without reading the mission again, and the snapshot equals a full replay of the log', async () => {
    const claim = await claimOne();
    const claimedRecord = structuredClone(claim.snapshot.record);
    const { projection: writer, calls } = await counted();
    const refused: unknown[] = [];
    writer.events.on('write-back.fast-refused', (event) => refused.push(event));
    const result = await write(claim, { claimed: claim.snapshot, tokenUsage: { agentId: 'a-1', tokens: 10 } }, writer);
    const after = await databaseNowMs(db.sql);
    expect(calls()).toEqual(['write_back_write']);
    expect(refused).toEqual([]);
    expect(result).toMatchObject({ duplicate: false, nextRunAtWritten: true });
    const [row] = await db.sql<{ field_meta: Record<string, string>; data: Record<string, unknown> }[]>`
      SELECT field_meta, data FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    const stamp = row!.field_meta.iterations!;
    expect(stamp).toMatch(STAMP);
    expect(row?.field_meta).toEqual({ iterations: stamp, nextRunAt: stamp });
    expect(Date.parse(stamp)).toBeGreaterThanOrEqual(claim.snapshot.readAtMs);
    expect(Date.parse(stamp)).toBeLessThanOrEqual(after);
    expect(result.nextRunAt).toBe(isoAt(Date.parse(stamp), 60 * MINUTE));
    expect(row?.data).toEqual({ nextRunAt: result.nextRunAt, iterations: [{ id: 'old', plan: [] }, { ...result.iteration }] });
    expect(await runnerStampsMs()).toEqual([Date.parse(stamp), Date.parse(stamp), Date.parse(stamp)]);
    expect(await projection.tokenUsageLast24h('u-1', 'a-1')).toBe(10);
    const [lease] = await db.sql<{ owner: string | null }[]>`SELECT lease_owner AS owner FROM mana_ai.mission_snapshots`;
    expect(lease?.owner).toBeNull();
    // The claimed record is left as the claim read it.
    expect(claim.snapshot.record).toEqual(claimedRecord);
    expect(await expectSnapshotIsReplay()).toMatchObject({ nextRunAt: result.nextRunAt });
  });

  // A user's "run now" (stamped after the claim) lands while the mission runs: the fast write is
  // refused (a row it has not seen, or a snapshot at another version) and the read path keeps the edit.
  it.each([
    ['in the log only', false],
    ['in the log and in the snapshot (refreshed)', true],
  ])('falls back to the read when a user edit lands after the claim (%s) and keeps the user’s value', async (_case, refreshed) => {
    const claim = await claimOne();
    const runNow = isoAt(t0);
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'm-1', op: 'update', data: { nextRunAt: runNow, title: 'edited' }, fieldMeta: { nextRunAt: isoAt(t0, 1), title: isoAt(t0, 1) } },
    ]);
    if (refreshed) expect((await projection.refresh()).rowsApplied).toBe(1);
    const { projection: writer, calls } = await counted();
    const refused: unknown[] = [];
    writer.events.on('write-back.fast-refused', (event) => refused.push(event));
    const result = await write(claim, { claimed: claim.snapshot }, writer);
    expect(calls()).toEqual(['write_back_write', 'write_back_read', 'write_back_write']);
    expect(refused).toEqual([{ userId: 'u-1', missionId: 'm-1', iterationId: result.iterationId }]);
    expect(result).toMatchObject({ duplicate: false, nextRunAtWritten: false, nextRunAt: runNow });
    const stored = await expectSnapshotIsReplay();
    expect(stored).toMatchObject({ nextRunAt: runNow, title: 'edited' });
    expect((stored.iterations as { id: string }[]).map((iteration) => iteration.id)).toEqual(['old', result.iterationId]);
  });

  it('falls back to the read when the lease was renewed between the claim and the write', async () => {
    const claim = await claimOne();
    expect(await projection.renew({ owner: 'i-1', missions: [{ userId: 'u-1', missionId: 'm-1' }] })).toHaveLength(1);
    const { projection: writer, calls } = await counted();
    const result = await write(claim, { claimed: claim.snapshot }, writer);
    expect(calls()).toEqual(['write_back_write', 'write_back_read', 'write_back_write']);
    expect(result).toMatchObject({ duplicate: false, nextRunAtWritten: true });
    const [lease] = await db.sql<{ owner: string | null }[]>`SELECT lease_owner AS owner FROM mana_ai.mission_snapshots`;
    expect(lease?.owner).toBeNull();
    expect(await expectSnapshotIsReplay()).toMatchObject({ nextRunAt: result.nextRunAt });
  });

  it('never writes a stamp ahead of the database’s now: an estimate ahead of it falls back to the read', async () => {
    const claim = await claimOne();
    const ahead = { ...claim.snapshot, readAtMs: claim.snapshot.readAtMs + 5 * MINUTE };
    const { projection: writer, calls } = await counted();
    const result = await write(claim, { claimed: ahead, tokenUsage: { agentId: 'a-1', tokens: 10 } }, writer);
    const after = await databaseNowMs(db.sql);
    expect(calls()).toEqual(['write_back_write', 'write_back_read', 'write_back_write']);
    const stamps = await runnerStampsMs();
    expect(stamps).toHaveLength(3);
    for (const stamp of stamps) expect(stamp).toBeLessThanOrEqual(after);
    expect(Date.parse(result.nextRunAt!)).toBeLessThanOrEqual(after + 60 * MINUTE);
    await expectSnapshotIsReplay();
  });

  it('still reads five times after its refused fast write before it gives up with PROJECTION_WRITE_CONFLICT', async () => {
    const claim = await claimOne();
    const calls: string[] = [];
    // Every conditional write finds a user's row that arrived after its read (or its claim).
    const busy = new Proxy(runner, {
      apply(target, thisArg, args: Parameters<Sql>) {
        const [strings] = args as unknown as [TemplateStringsArray];
        const name = /mana_ai\.(\w+)\(/.exec(strings.join(''))?.[1] ?? '';
        calls.push(name);
        if (name !== 'write_back_write') return Reflect.apply(target, thisArg, args);
        const edit = { userId: 'u-1', recordId: 'm-1', op: 'update' as const, data: { title: `edit ${calls.length}` }, fieldMeta: { title: isoAt(t0, calls.length) } };
        return insertChanges(db.sql, [edit]).then(() => Reflect.apply(target, thisArg, args));
      },
    });
    await expect(write(claim, { claimed: claim.snapshot }, createProjection({ sql: busy }))).rejects.toMatchObject({
      code: 'PROJECTION_WRITE_CONFLICT',
      details: { missionId: 'm-1', attempts: 5 },
    });
    expect(calls).toEqual(['write_back_write', ...Array.from({ length: 5 }, () => ['write_back_read', 'write_back_write']).flat()]);
    const [written] = await db.sql<{ count: string }[]>`SELECT count(*)::text AS count FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    expect(written?.count).toBe('0');
  });
});

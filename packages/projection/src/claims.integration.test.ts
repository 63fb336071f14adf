import { buildServerIteration, makeAgentActor } from '@mana-ai/core';
import { type TestDatabase, createTestDatabase, openTransaction, runnerUrl } from '@mana-ai/test-postgres';
import type { Sql } from 'postgres';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { RUNNER_PASSWORD, ageLeases, clearProjection, connectAsRunner, databaseNowMs, insertChanges, isoAt, missionData } from '../test/helpers.js';
import { deriveIterationId } from './iteration-id.js';
import type { MissionKey } from './claims.js';
import { type Projection, createProjection } from './projection.js';

let db: TestDatabase;
let runner: Sql;
let projection: Projection;
/** The database's now when the test began: due times are placed around it. */
let t0: number;

const MINUTE = 60_000;

beforeAll(async () => {
  db = await createTestDatabase();
  runner = await connectAsRunner(db, { max: 6 });
});
afterAll(() => db.drop());

beforeEach(async () => {
  await clearProjection(db.sql);
  projection = createProjection({ sql: runner }, { leaseMs: 60_000 });
  t0 = await databaseNowMs(db.sql);
});
afterEach(() => {
  vi.useRealTimers();
});

/** An instant with a zone offset instead of `Z` (`+02:00` = 120), as some devices write it. */
function withOffset(ms: number, offsetMinutes: number): string {
  const local = new Date(ms + offsetMinutes * MINUTE).toISOString().slice(0, 19);
  const sign = offsetMinutes < 0 ? '-' : '+';
  const abs = Math.abs(offsetMinutes);
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/** Inserts `count` missions due an hour ago (ids `<prefix>1..count`) with one statement, and projects them. */
async function seedDueMissions(count: number, overrides: Record<string, unknown> = {}, prefix = 'm-'): Promise<void> {
  await db.sql`
    INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_meta, client_id)
    SELECT 'ai', 'aiMissions', ${prefix} || g, 'u-1', 'insert',
           jsonb_build_object('id', ${prefix} || g, 'state', 'active', 'nextRunAt', ${isoAt(t0, -60 * MINUTE)}::text,
                              'cadence', jsonb_build_object('kind', 'interval', 'everyMinutes', 60), 'iterations', '[]'::jsonb)
             || ${JSON.stringify(overrides)}::text::jsonb,
           '{}'::jsonb, 'seed'
    FROM generate_series(1, ${count}) AS g`;
  await projection.refresh();
}

/** The keys of renewed leases. */
const keysOf = (leases: readonly MissionKey[]) => leases.map(({ userId, missionId }) => ({ userId, missionId }));

describe('claimDueMissions', () => {
  it('claims only active, undeleted missions whose next run has come on the database clock', async () => {
    const short = `${isoAt(t0, -10_000).slice(0, 19)}Z`;
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'due', data: missionData('due', { nextRunAt: isoAt(t0, -60 * MINUTE) }) },
      { userId: 'u-1', recordId: 'future', data: missionData('future', { nextRunAt: isoAt(t0, 60 * MINUTE) }) },
      { userId: 'u-1', recordId: 'paused', data: missionData('paused', { state: 'paused', nextRunAt: isoAt(t0, -MINUTE) }) },
      {
        userId: 'u-1',
        recordId: 'soft-deleted',
        data: missionData('soft-deleted', { deletedAt: isoAt(t0, -MINUTE), nextRunAt: isoAt(t0, -MINUTE) }),
      },
      { userId: 'u-1', recordId: 'no-next', data: missionData('no-next', { nextRunAt: undefined }) },
      { userId: 'u-1', recordId: 'offset', data: missionData('offset', { nextRunAt: withOffset(t0 - 30 * MINUTE, 120) }) },
      { userId: 'u-1', recordId: 'offset-later', data: missionData('offset-later', { nextRunAt: withOffset(t0 + 30 * MINUTE, -120) }) },
      { userId: 'u-1', recordId: 'short', data: missionData('short', { nextRunAt: short }) },
    ]);
    await projection.refresh();
    const before = await databaseNowMs(db.sql);
    const claimed = await projection.claimDue({ owner: 'i-1', limit: 100 });
    const after = await databaseNowMs(db.sql);
    expect(claimed.map((claim) => claim.mission.id)).toEqual(['due', 'offset', 'short']);
    expect(claimed[0]).toMatchObject({ dueSlot: isoAt(t0, -60 * MINUTE), owner: 'i-1' });
    expect(claimed[1]?.dueSlot).toBe(new Date(Math.floor((t0 - 30 * MINUTE) / 1000) * 1000).toISOString());
    const leaseUntil = Date.parse(claimed[0]!.leaseUntil);
    expect(leaseUntil).toBeGreaterThanOrEqual(before - 1000 + 60_000);
    expect(leaseUntil).toBeLessThanOrEqual(after + 60_000);
    expect(claimed[0]?.mission).toMatchObject({ userId: 'u-1', title: 'Mission due', state: 'active' });
    expect(await projection.claimDue({ owner: 'i-2', limit: 100 })).toEqual([]);
  });

  it('neither takes a live lease nor plans early when the instance clock runs 5 minutes ahead', async () => {
    await seedDueMissions(3);
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'soon', data: missionData('soon', { nextRunAt: isoAt(t0, 2 * MINUTE) }) }]);
    await projection.refresh();
    expect(await projection.claimDue({ owner: 'on-time', limit: 10 })).toHaveLength(3);
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() + 5 * MINUTE);
    const ahead = createProjection({ sql: runner }, { leaseMs: 60_000 });
    expect(await ahead.claimDue({ owner: 'ahead', limit: 10 })).toEqual([]);
    const [leases] = await db.sql<{ owners: string[] }[]>`
      SELECT array_agg(DISTINCT lease_owner) AS owners FROM mana_ai.mission_snapshots WHERE lease_owner IS NOT NULL`;
    expect(leases?.owners).toEqual(['on-time']);
  });

  it('claims each of 500 due missions exactly once when two claimers race', async () => {
    await seedDueMissions(500);
    const clientA = db.connect({ url: db.urlFor('mana_ai_runner', RUNNER_PASSWORD), max: 3 });
    const clientB = db.connect({ url: db.urlFor('mana_ai_runner', RUNNER_PASSWORD), max: 3 });
    const claimerA = createProjection({ sql: clientA }, { leaseMs: 60_000 });
    const claimerB = createProjection({ sql: clientB }, { leaseMs: 60_000 });
    const drain = async (claimer: Projection, owner: string): Promise<string[]> => {
      const ids: string[] = [];
      for (;;) {
        const batch = await claimer.claimDue({ owner, limit: 17 });
        if (batch.length === 0) return ids;
        ids.push(...batch.map((claim) => claim.mission.id));
      }
    };
    const [a1, b1, a2, b2] = await Promise.all([drain(claimerA, 'A'), drain(claimerB, 'B'), drain(claimerA, 'A'), drain(claimerB, 'B')]);
    const a = [...a1!, ...a2!];
    const b = [...b1!, ...b2!];
    const all = [...a, ...b];
    expect(all).toHaveLength(500);
    expect(new Set(all).size).toBe(500);
    expect(a.length).toBeGreaterThan(0);
    expect(b.length).toBeGreaterThan(0);
    const [leases] = await db.sql<{ a: string; b: string }[]>`
      SELECT count(*) FILTER (WHERE lease_owner = 'A')::text AS a, count(*) FILTER (WHERE lease_owner = 'B')::text AS b
      FROM mana_ai.mission_snapshots`;
    expect(Number(leases?.a)).toBe(a.length);
    expect(Number(leases?.b)).toBe(b.length);
  });

  it('lets another instance reclaim the missions when the claimer dies and its leases expire', async () => {
    await seedDueMissions(5);
    const dead = await projection.claimDue({ owner: 'crashed', limit: 10 });
    expect(dead).toHaveLength(5);
    await ageLeases(db.sql, 50_000);
    expect(await projection.claimDue({ owner: 'survivor', limit: 10 })).toEqual([]);
    await ageLeases(db.sql, 10_001);
    const reclaimed = await projection.claimDue({ owner: 'survivor', limit: 10 });
    expect(reclaimed.map((claim) => claim.mission.id).sort()).toEqual(dead.map((claim) => claim.mission.id).sort());
    expect(await projection.release('crashed')).toBe(0);
  });

  it('renews only the leases the owner still holds, so a long run is not reclaimed', async () => {
    await seedDueMissions(3);
    const events: unknown[] = [];
    const claimed = await projection.claimDue({ owner: 'slow', limit: 3 });
    const keys = claimed.map((claim) => ({ userId: claim.mission.userId, missionId: claim.mission.id }));
    projection.events.on('missions.renewed', (event) => events.push(event));
    // Forty seconds into the lease the heartbeat pushes two of them a full lease ahead of the database's now.
    await ageLeases(db.sql, 40_000);
    expect(keysOf(await projection.renew({ owner: 'slow', missions: keys.slice(0, 2) }))).toEqual(keys.slice(0, 2));
    await ageLeases(db.sql, 40_000);
    // The unrenewed third lease ran out and another instance took that mission; the renewed two did not.
    const taken = await projection.claimDue({ owner: 'other', limit: 10 });
    expect(taken.map((claim) => claim.mission.id)).toEqual([keys[2]!.missionId]);
    // A heartbeat cannot take back a lost lease, and reports it missing.
    const before = await databaseNowMs(db.sql);
    expect(keysOf(await projection.renew({ owner: 'slow', missions: keys, leaseMs: 30_000 }))).toEqual(keys.slice(0, 2));
    const after = await databaseNowMs(db.sql);
    const [leases] = await db.sql<{ slow_until: Date; other: string }[]>`
      SELECT max(lease_until) FILTER (WHERE lease_owner = 'slow') AS slow_until,
             count(*) FILTER (WHERE lease_owner = 'other')::text AS other
      FROM mana_ai.mission_snapshots`;
    expect(leases!.slow_until.getTime()).toBeGreaterThanOrEqual(before + 30_000 - 1);
    expect(leases!.slow_until.getTime()).toBeLessThanOrEqual(after + 30_000);
    expect(leases?.other).toBe('1');
    expect(events).toEqual([
      { owner: 'slow', requested: 2, renewed: 2 },
      { owner: 'slow', requested: 3, renewed: 2 },
    ]);
    expect(await projection.renew({ owner: 'slow', missions: [] })).toEqual([]);
    await expect(projection.renew({ owner: '', missions: keys })).rejects.toMatchObject({ code: 'PROJECTION_INVALID_ARGUMENT' });
    await expect(projection.renew({ owner: 'slow', missions: keys, leaseMs: 0 })).rejects.toMatchObject({ code: 'PROJECTION_INVALID_ARGUMENT' });
  });

  it('fails a renewal fast instead of queueing behind a row lock another session holds', async () => {
    await seedDueMissions(1);
    const claimed = await projection.claimDue({ owner: 'slow', limit: 1 });
    const key = { userId: claimed[0]!.mission.userId, missionId: claimed[0]!.mission.id };
    const stuck = await openTransaction(db.connect({ max: 1 }));
    try {
      await stuck.run((tx) => tx`SELECT 1 FROM mana_ai.mission_snapshots WHERE mission_id = ${key.missionId} FOR UPDATE`);
      const started = performance.now();
      await expect(projection.renew({ owner: 'slow', missions: [key] })).rejects.toMatchObject({ code: '55P03' });
      expect(performance.now() - started).toBeLessThan(20_000);
    } finally {
      await stuck.end();
    }
    expect(keysOf(await projection.renew({ owner: 'slow', missions: [key] }))).toEqual([key]);
  }, 30_000);

  // The version before is the one the renewal replaced, also when a refresh or a write-back changed
  // the row between the renewal's start and its lock: the renewal waits, then reads the row again.
  it.each([
    ['a refresh wrote the record', 'UPDATE mana_ai.mission_snapshots SET record = record || \'{"title": "edited"}\'', 1],
    ['a write-back released the lease', 'UPDATE mana_ai.mission_snapshots SET lease_owner = NULL, lease_until = NULL', 0],
  ])('returns each row’s version before and after the renewal, the latest one when %s concurrently', async (_case, change, renewed) => {
    await seedDueMissions(1);
    const [claimed] = await projection.claimDue({ owner: 'slow', limit: 1 });
    const key = { userId: claimed!.mission.userId, missionId: claimed!.mission.id };
    const versionOf = async (sql: Pick<Sql, 'unsafe'>) =>
      (await sql.unsafe<{ version: string }[]>(`SELECT xmin::text AS version FROM mana_ai.mission_snapshots WHERE mission_id = '${key.missionId}'`))[0]!.version;
    const [quiet] = await projection.renew({ owner: 'slow', missions: [key] });
    expect(quiet).toEqual({ ...key, version: await versionOf(db.sql), versionBefore: claimed!.snapshot.version });
    const writer = await openTransaction(db.connect({ max: 1 }));
    let changedVersion: string;
    let renewal: ReturnType<Projection['renew']>;
    try {
      changedVersion = await writer.run(async (tx) => {
        await tx.unsafe(`${change} WHERE mission_id = '${key.missionId}'`);
        return versionOf(tx);
      });
      renewal = projection.renew({ owner: 'slow', missions: [key] });
      await vi.waitFor(async () => {
        const [waiting] = await db.sql<{ n: number }[]>`
          SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`;
        expect(waiting?.n).toBe(1);
      });
    } finally {
      await writer.end();
    }
    const leases = await renewal;
    expect(leases).toEqual(renewed ? [{ ...key, version: await versionOf(db.sql), versionBefore: changedVersion }] : []);
    expect(changedVersion).not.toBe(quiet!.version);
  });

  it('counts running and expired leases on the database clock when a claimer stops releasing', async () => {
    await seedDueMissions(4);
    expect(await projection.leaseStats()).toEqual({ active: 0, expired: 0, oldestExpiredAt: null });
    const claimed = await projection.claimDue({ owner: 'stuck', limit: 3 });
    expect(await projection.leaseStats()).toEqual({ active: 3, expired: 0, oldestExpiredAt: null });
    await projection.release('stuck', [{ userId: 'u-1', missionId: claimed[0]!.mission.id }]);
    await ageLeases(db.sql, 60_000);
    const [oldest] = await db.sql<{ at: string }[]>`
      SELECT to_char(min(lease_until) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS at FROM mana_ai.mission_snapshots`;
    expect(await projection.leaseStats()).toEqual({ active: 0, expired: 2, oldestExpiredAt: oldest?.at });
    await projection.claimDue({ owner: 'survivor', limit: 10 });
    expect(await projection.leaseStats()).toEqual({ active: 4, expired: 0, oldestExpiredAt: null });
  });

  it('keeps an agent within maxConcurrentMissions across claimers and releases', async () => {
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'a-2', table: 'agents', data: { name: 'Two', maxConcurrentMissions: 2 } },
      { userId: 'u-1', recordId: 'a-default', table: 'agents', data: { name: 'Default' } },
    ]);
    await seedDueMissions(6, { agentId: 'a-2' });
    const due = isoAt(t0, -MINUTE);
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'x-1', data: missionData('x-1', { agentId: 'a-default', nextRunAt: due }) },
      { userId: 'u-1', recordId: 'x-2', data: missionData('x-2', { agentId: 'a-default', nextRunAt: due }) },
      { userId: 'u-1', recordId: 'x-3', data: missionData('x-3', { agentId: 'unknown-agent', nextRunAt: due }) },
      { userId: 'u-1', recordId: 'x-4', data: missionData('x-4', { agentId: 'unknown-agent', nextRunAt: due }) },
    ]);
    await projection.refresh();
    const first = await Promise.all([
      projection.claimDue({ owner: 'A', limit: 3 }),
      projection.claimDue({ owner: 'B', limit: 3 }),
      projection.claimDue({ owner: 'C', limit: 3 }),
    ]);
    const claimed = first.flat();
    const byAgent = (agentId: string) => claimed.filter((claim) => claim.mission.agentId === agentId);
    expect(byAgent('a-2')).toHaveLength(2);
    expect(byAgent('a-default')).toHaveLength(1);
    expect(byAgent('unknown-agent')).toHaveLength(2);
    expect(await projection.claimDue({ owner: 'D', limit: 10 })).toEqual([]);
    const one = byAgent('a-2')[0]!;
    expect(await projection.release(one.owner, [{ userId: 'u-1', missionId: one.mission.id }])).toBe(1);
    const next = await projection.claimDue({ owner: 'D', limit: 10 });
    expect(next.map((claim) => claim.mission.agentId)).toEqual(['a-2']);
  });

  it('reads the limit as upstream did: numeric text counts, anything else and a deleted agent do not limit', async () => {
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'a-text', table: 'agents', data: { name: 'Text', maxConcurrentMissions: ' 2 ' } },
      { userId: 'u-1', recordId: 'a-word', table: 'agents', data: { name: 'Word', maxConcurrentMissions: 'many' } },
      { userId: 'u-1', recordId: 'a-zero', table: 'agents', data: { name: 'Zero', maxConcurrentMissions: 0 } },
      { userId: 'u-1', recordId: 'a-gone', table: 'agents', data: { name: 'Gone', deletedAt: isoAt(t0, -MINUTE) } },
    ]);
    await seedDueMissions(4, { agentId: 'a-text' }, 'text-');
    await seedDueMissions(4, { agentId: 'a-word' }, 'word-');
    await seedDueMissions(4, { agentId: 'a-zero' }, 'zero-');
    await seedDueMissions(4, { agentId: 'a-gone' }, 'gone-');
    const claimed = await projection.claimDue({ owner: 'A', limit: 100 });
    const count = (agentId: string) => claimed.filter((claim) => claim.mission.agentId === agentId).length;
    expect([count('a-text'), count('a-word'), count('a-zero'), count('a-gone')]).toEqual([2, 4, 0, 4]);
  });

  it('does not let an agent at its limit with a huge due backlog starve the other agents', async () => {
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'a-big', table: 'agents', data: { name: 'Big', maxConcurrentMissions: 1 } }]);
    // 5,000 due missions of one agent, all due before the 10 of the other agents.
    await seedDueMissions(5000, { agentId: 'a-big', nextRunAt: isoAt(t0, -2 * 60 * MINUTE) }, 'big-');
    await insertChanges(
      db.sql,
      Array.from({ length: 10 }, (_, index) => ({
        userId: 'u-2',
        recordId: `small-${index}`,
        data: missionData(`small-${index}`, { agentId: `a-small-${index}`, nextRunAt: isoAt(t0, -MINUTE) }),
      })),
    );
    await projection.refresh();
    const claimed = await projection.claimDue({ owner: 'A', limit: 32 });
    expect(claimed).toHaveLength(11);
    expect(claimed.filter((claim) => claim.mission.agentId === 'a-big')).toHaveLength(1);
    expect(new Set(claimed.filter((claim) => claim.mission.userId === 'u-2').map((claim) => claim.mission.id)).size).toBe(10);
    expect(await projection.claimDue({ owner: 'B', limit: 32 })).toEqual([]);
  });

  it('takes the earliest due missions first across agents, past an agent whose earliest mission is running', async () => {
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'a-two', table: 'agents', data: { name: 'Two', maxConcurrentMissions: 2 } }]);
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'two-first', data: missionData('two-first', { agentId: 'a-two', nextRunAt: isoAt(t0, -50 * MINUTE) }) },
      { userId: 'u-1', recordId: 'two-last', data: missionData('two-last', { agentId: 'a-two', nextRunAt: isoAt(t0, -10 * MINUTE) }) },
      { userId: 'u-1', recordId: 'free', data: missionData('free', { nextRunAt: isoAt(t0, -40 * MINUTE) }) },
      { userId: 'u-1', recordId: 'other', data: missionData('other', { agentId: 'a-other', nextRunAt: isoAt(t0, -30 * MINUTE) }) },
    ]);
    await projection.refresh();
    const ids = async (limit: number) => (await projection.claimDue({ owner: 'A', limit })).map((claim) => claim.mission.id);
    expect(await ids(2)).toEqual(['two-first', 'free']);
    expect(await ids(1)).toEqual(['other']);
    expect(await ids(1)).toEqual(['two-last']);
    expect(await ids(1)).toEqual([]);
  });

  it('follows a mission to its new agent and an agent to its new limit', async () => {
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'a-one', table: 'agents', data: { name: 'One', maxConcurrentMissions: 1 } },
      { userId: 'u-1', recordId: 'a-idle', table: 'agents', data: { name: 'Idle', maxConcurrentMissions: 1 } },
    ]);
    await seedDueMissions(3, { agentId: 'a-one' });
    expect(await projection.claimDue({ owner: 'A', limit: 10 })).toHaveLength(1);
    // The user moves m-3 to another agent: it no longer waits for a-one's slot.
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'm-3', op: 'update', data: { agentId: 'a-idle' }, fieldMeta: { agentId: isoAt(t0) } },
    ]);
    await projection.refresh();
    expect((await projection.claimDue({ owner: 'A', limit: 10 })).map((claim) => claim.mission.id)).toEqual(['m-3']);
    // a-one gets a second slot.
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'a-one', table: 'agents', op: 'update', data: { maxConcurrentMissions: 2 }, fieldMeta: { maxConcurrentMissions: isoAt(t0) } },
    ]);
    await projection.refresh();
    expect(await projection.claimDue({ owner: 'A', limit: 10 })).toHaveLength(1);
    expect(await projection.claimDue({ owner: 'A', limit: 10 })).toEqual([]);
  });

  it('keeps every lane equal to its missions while refreshes and write-backs change them at once', async () => {
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'a-many', table: 'agents', data: { name: 'Many', maxConcurrentMissions: 'many' } }]);
    await seedDueMissions(30, { agentId: 'a-many' });
    const claims = await projection.claimDue({ owner: 'A', limit: 30 });
    expect(claims).toHaveLength(30);
    const writeBack = async (claim: (typeof claims)[number]) => {
      const iterationId = await deriveIterationId(claim.mission.id, claim.dueSlot);
      const now = isoAt(t0);
      await projection.writeIteration({
        userId: claim.mission.userId,
        missionId: claim.mission.id,
        dueSlot: claim.dueSlot,
        iteration: buildServerIteration({ iterationId, calls: [], summary: '', startedAt: now, finishedAt: now }),
        actor: makeAgentActor({ agentId: 'a-many', displayName: 'Many', missionId: claim.mission.id, iterationId, rationale: '' }),
        owner: 'A',
      });
    };
    const deviceEdits = async () => {
      for (let round = 0; round < 10; round++) {
        const id = `m-${1 + ((round * 7) % 30)}`;
        const edit = round % 2 === 0 ? { agentId: 'a-other' } : { nextRunAt: isoAt(t0, -round * MINUTE) };
        const stamps = Object.fromEntries(Object.keys(edit).map((key) => [key, isoAt(t0, 10 * MINUTE)]));
        await insertChanges(db.sql, [{ userId: 'u-1', recordId: id, op: 'update', data: edit, fieldMeta: stamps }]);
        await projection.refresh();
      }
    };
    await Promise.all([...claims.map(writeBack), deviceEdits(), projection.refresh()]);
    await projection.refresh();
    const lanes = await db.sql`
      SELECT user_id, agent_id, head_at FROM mana_ai.mission_lanes WHERE head_at IS NOT NULL ORDER BY 1, 2`;
    const truth = await db.sql`
      SELECT user_id, agent_id, min(next_run_at) AS head_at FROM mana_ai.mission_snapshots
      WHERE active AND agent_id IS NOT NULL AND next_run_at IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2`;
    expect(lanes).toEqual(truth);
    expect(truth.map((lane) => lane.agent_id)).toEqual(['a-many', 'a-other']);
  });

  it('claims the missions of several users with each one’s own record in one statement', async () => {
    const users = ['u-1', 'u-2', 'u-3'];
    await insertChanges(
      db.sql,
      users.flatMap((userId, index) =>
        [1, 2].map((n) => ({
          userId,
          recordId: `m-${n}`,
          data: missionData(`m-${n}`, { objective: `${userId}/m-${n}`, nextRunAt: isoAt(t0, -(index * 2 + n) * MINUTE) }),
        })),
      ),
    );
    await projection.refresh();
    const statements: string[] = [];
    const counted = db.connect({ url: await runnerUrl(db), max: 1, debug: (_connection, query) => statements.push(query) });
    await counted`SELECT 1`;
    statements.length = 0;
    const claimed = await createProjection({ sql: counted }, { leaseMs: 60_000 }).claimDue({ owner: 'i-1', limit: 10 });
    expect(statements.map((query) => /mana_ai\.(\w+)\(/.exec(query)?.[1] ?? query.trim())).toEqual(['claim_mission_snapshots']);
    expect(claimed.map((claim) => [claim.mission.userId, claim.mission.objective])).toEqual([
      ['u-3', 'u-3/m-2'],
      ['u-3', 'u-3/m-1'],
      ['u-2', 'u-2/m-2'],
      ['u-2', 'u-2/m-1'],
      ['u-1', 'u-1/m-2'],
      ['u-1', 'u-1/m-1'],
    ]);
  });

  it('returns with each claim the snapshot it read: the record, the version after the lease update, the database’s time of the read', async () => {
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'm-1', data: missionData('m-1', { objective: 'eins', nextRunAt: isoAt(t0, -2 * MINUTE) }) },
      { userId: 'u-2', recordId: 'm-2', data: missionData('m-2', { objective: 'zwei', nextRunAt: isoAt(t0, -MINUTE) }) },
    ]);
    await projection.refresh();
    const before = await databaseNowMs(db.sql);
    const claimed = await projection.claimDue({ owner: 'i-1', limit: 10 });
    const arrived = performance.now();
    const after = await databaseNowMs(db.sql);
    const rows = await db.sql<{ mission_id: string; record: Record<string, unknown>; version: string }[]>`
      SELECT mission_id, record, xmin::text AS version FROM mana_ai.mission_snapshots ORDER BY mission_id`;
    expect(claimed.map((claim) => [claim.mission.id, claim.snapshot.record, claim.snapshot.version])).toEqual(
      rows.map((row) => [row.mission_id, row.record, row.version]),
    );
    for (const { snapshot } of claimed) {
      expect(Number.isInteger(snapshot.readAtMs)).toBe(true);
      expect(snapshot.readAtMs).toBeGreaterThanOrEqual(before);
      expect(snapshot.readAtMs).toBeLessThanOrEqual(after);
      expect(snapshot.receivedAt).toBeLessThanOrEqual(arrived);
    }
  });

  it('rejects a claim without owner or with a bad limit', async () => {
    await expect(projection.claimDue({ owner: '', limit: 1 })).rejects.toMatchObject({ code: 'PROJECTION_INVALID_ARGUMENT' });
    await expect(projection.claimDue({ owner: 'x', limit: 0 })).rejects.toMatchObject({ code: 'PROJECTION_INVALID_ARGUMENT' });
  });
});

import { createManualClock, type ManualClock } from '@mana-ai/core';
import { type TestDatabase, createTestDatabase, openTransaction } from '@mana-ai/test-postgres';
import type { Sql } from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { RUNNER_PASSWORD, connectAsRunner, insertChanges, missionData } from '../test/helpers.js';
import { type Projection, createProjection } from './projection.js';

let db: TestDatabase;
let runner: Sql;
let clock: ManualClock;
let projection: Projection;

const NOW = '2026-04-21T07:00:00.000Z';

beforeAll(async () => {
  db = await createTestDatabase();
  runner = await connectAsRunner(db, { max: 6 });
});
afterAll(() => db.drop());

beforeEach(async () => {
  await db.sql`TRUNCATE sync_changes, mana_ai.mission_snapshots, mana_ai.agent_snapshots, mana_ai.snapshot_tombstones, mana_ai.projection_cursors`;
  clock = createManualClock(NOW);
  projection = createProjection({ sql: runner, clock }, { leaseMs: 60_000 });
});

/** Inserts `count` due missions with one bulk statement and projects them. */
async function seedDueMissions(count: number, overrides: Record<string, unknown> = {}, userId = 'u-1'): Promise<void> {
  await db.sql`
    INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_meta, client_id)
    SELECT 'ai', 'aiMissions', 'm-' || g, ${userId}, 'insert',
           jsonb_build_object('id', 'm-' || g, 'state', 'active', 'nextRunAt', '2026-04-21T06:00:00.000Z',
                              'cadence', jsonb_build_object('kind', 'interval', 'everyMinutes', 60), 'iterations', '[]'::jsonb)
             || ${JSON.stringify(overrides)}::text::jsonb,
           '{}'::jsonb, 'seed'
    FROM generate_series(1, ${count}) AS g`;
  await projection.refresh();
}

describe('claimDueMissions', () => {
  it('claims only active, undeleted missions whose next run has come', async () => {
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'due', data: missionData('due') },
      { userId: 'u-1', recordId: 'future', data: missionData('future', { nextRunAt: '2026-04-21T08:00:00.000Z' }) },
      { userId: 'u-1', recordId: 'paused', data: missionData('paused', { state: 'paused' }) },
      { userId: 'u-1', recordId: 'soft-deleted', data: missionData('soft-deleted', { deletedAt: '2026-04-20T00:00:00.000Z' }) },
      { userId: 'u-1', recordId: 'no-next', data: missionData('no-next', { nextRunAt: undefined }) },
      { userId: 'u-1', recordId: 'offset', data: missionData('offset', { nextRunAt: '2026-04-21T08:30:00+02:00' }) },
      { userId: 'u-1', recordId: 'offset-later', data: missionData('offset-later', { nextRunAt: '2026-04-21T07:30:00-02:00' }) },
      { userId: 'u-1', recordId: 'short', data: missionData('short', { nextRunAt: '2026-04-21T07:00:00Z' }) },
    ]);
    await projection.refresh();
    const claimed = await projection.claimDue({ owner: 'i-1', limit: 100 });
    expect(claimed.map((claim) => claim.mission.id)).toEqual(['due', 'offset', 'short']);
    expect(claimed[0]).toMatchObject({ dueSlot: '2026-04-21T06:00:00.000Z', owner: 'i-1', leaseUntil: '2026-04-21T07:01:00.000Z' });
    expect(claimed[0]?.mission).toMatchObject({ userId: 'u-1', title: 'Mission due', state: 'active' });
    expect(await projection.claimDue({ owner: 'i-2', limit: 100 })).toEqual([]);
  });

  it('claims each of 500 due missions exactly once when two claimers race', async () => {
    await seedDueMissions(500);
    const clientA = db.connect({ url: db.urlFor('mana_ai_runner', RUNNER_PASSWORD), max: 3 });
    const clientB = db.connect({ url: db.urlFor('mana_ai_runner', RUNNER_PASSWORD), max: 3 });
    const claimerA = createProjection({ sql: clientA, clock }, { leaseMs: 60_000 });
    const claimerB = createProjection({ sql: clientB, clock }, { leaseMs: 60_000 });
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
    clock.advance(59_999);
    expect(await projection.claimDue({ owner: 'survivor', limit: 10 })).toEqual([]);
    clock.advance(1);
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
    // Halfway through the lease the heartbeat pushes it a full lease ahead.
    clock.advance(40_000);
    expect(await projection.renew({ owner: 'slow', missions: keys.slice(0, 2) })).toEqual(keys.slice(0, 2));
    clock.advance(40_000);
    // The unrenewed third lease ran out and another instance took that mission; the renewed two did not.
    const taken = await projection.claimDue({ owner: 'other', limit: 10 });
    expect(taken.map((claim) => claim.mission.id)).toEqual([keys[2]!.missionId]);
    // A heartbeat cannot take back a lost lease, and reports it missing.
    expect(await projection.renew({ owner: 'slow', missions: keys, leaseMs: 30_000 })).toEqual(keys.slice(0, 2));
    const [leases] = await db.sql<{ slow_until: string; other: string }[]>`
      SELECT max(lease_until) FILTER (WHERE lease_owner = 'slow')::text AS slow_until,
             count(*) FILTER (WHERE lease_owner = 'other')::text AS other
      FROM mana_ai.mission_snapshots`;
    expect(new Date(leases!.slow_until).toISOString()).toBe('2026-04-21T07:01:50.000Z');
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
    expect(await projection.renew({ owner: 'slow', missions: [key] })).toEqual([key]);
  }, 30_000);

  it('counts running and expired leases when a claimer stops releasing', async () => {
    await seedDueMissions(4);
    expect(await projection.leaseStats()).toEqual({ active: 0, expired: 0, oldestExpiredAt: null });
    const claimed = await projection.claimDue({ owner: 'stuck', limit: 3 });
    expect(await projection.leaseStats()).toEqual({ active: 3, expired: 0, oldestExpiredAt: null });
    await projection.release('stuck', [{ userId: 'u-1', missionId: claimed[0]!.mission.id }]);
    clock.advance(60_000);
    expect(await projection.leaseStats()).toEqual({ active: 0, expired: 2, oldestExpiredAt: '2026-04-21T07:01:00.000Z' });
    await projection.claimDue({ owner: 'survivor', limit: 10 });
    expect(await projection.leaseStats()).toEqual({ active: 4, expired: 0, oldestExpiredAt: null });
  });

  it('keeps an agent within maxConcurrentMissions across claimers and releases', async () => {
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'a-2', table: 'agents', data: { name: 'Two', maxConcurrentMissions: 2 } },
      { userId: 'u-1', recordId: 'a-default', table: 'agents', data: { name: 'Default' } },
    ]);
    await seedDueMissions(6, { agentId: 'a-2' });
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'x-1', data: missionData('x-1', { agentId: 'a-default' }) },
      { userId: 'u-1', recordId: 'x-2', data: missionData('x-2', { agentId: 'a-default' }) },
      { userId: 'u-1', recordId: 'x-3', data: missionData('x-3', { agentId: 'unknown-agent' }) },
      { userId: 'u-1', recordId: 'x-4', data: missionData('x-4', { agentId: 'unknown-agent' }) },
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

  it('rejects a claim without owner or with a bad limit', async () => {
    await expect(projection.claimDue({ owner: '', limit: 1 })).rejects.toMatchObject({ code: 'PROJECTION_INVALID_ARGUMENT' });
    await expect(projection.claimDue({ owner: 'x', limit: 0 })).rejects.toMatchObject({ code: 'PROJECTION_INVALID_ARGUMENT' });
  });
});

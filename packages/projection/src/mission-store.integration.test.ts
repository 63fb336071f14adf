import { type MissionClaim, buildServerIteration, makeAgentActor } from '@mana-ai/core';
import { type TestDatabase, agentRecord, createTestDatabase, runnerUrl } from '@mana-ai/test-postgres';
import type { Sql } from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { clearProjection, connectAsRunner, insertChanges, missionData } from '../test/helpers.js';
import { deriveIterationId } from './iteration-id.js';
import { createMissionStore } from './mission-store.js';
import { type Projection, createProjection } from './projection.js';

let db: TestDatabase;
let runner: Sql;
let projection: Projection;

beforeAll(async () => {
  db = await createTestDatabase();
  runner = await connectAsRunner(db, { max: 4 });
});
afterAll(() => db.drop());

beforeEach(async () => {
  await clearProjection(db.sql);
  projection = createProjection({ sql: runner }, { leaseMs: 60_000 });
  await insertChanges(db.sql, [
    { userId: 'u-1', recordId: 'a-1', table: 'agents', data: agentRecord('a-1') },
    { userId: 'u-1', recordId: 'with-agent', data: missionData('with-agent', { agentId: 'a-1' }) },
    { userId: 'u-1', recordId: 'without-agent', data: missionData('without-agent') },
  ]);
});

async function leaseOwners(): Promise<Record<string, string | null>> {
  const rows = await db.sql<{ mission_id: string; lease_owner: string | null }[]>`
    SELECT mission_id, lease_owner FROM mana_ai.mission_snapshots WHERE user_id = 'u-1' ORDER BY mission_id`;
  return Object.fromEntries(rows.map((row) => [row.mission_id, row.lease_owner]));
}

describe('createMissionStore', () => {
  it('claims due missions with their agent and an iteration id derived from the due slot when the store is core’s port', async () => {
    const store = createMissionStore(projection, { owner: 'i-1' });
    expect(await store.refresh()).toMatchObject({ rowsApplied: 3, newSnapshots: 3 });
    const claims = await store.claimDue({ limit: 10 });
    const byId = new Map(claims.map((claim) => [claim.mission.id, claim]));
    expect([...byId.keys()].sort()).toEqual(['with-agent', 'without-agent']);
    expect(byId.get('with-agent')?.agent).toMatchObject({ id: 'a-1', name: 'Agent a-1' });
    expect(byId.get('without-agent')?.agent).toBeNull();
    const claim = byId.get('with-agent')!;
    expect(claim.iterationId).toBe(await deriveIterationId('with-agent', claim.dueSlot));
    expect(await leaseOwners()).toEqual({ 'with-agent': 'i-1', 'without-agent': 'i-1' });
    expect(await store.renew?.(claims)).toHaveLength(2);
    await store.release(claim);
    expect(await leaseOwners()).toEqual({ 'with-agent': null, 'without-agent': 'i-1' });
  });

  it('hands back the whole claimed batch when an agent lookup fails while claiming', async () => {
    await projection.refresh();
    const failing: Projection = { ...projection, loadAgent: () => Promise.reject(new Error('agent lookup failed')) };
    const store = createMissionStore(failing, { owner: 'i-1' });
    await expect(store.claimDue({ limit: 10 })).rejects.toThrow('agent lookup failed');
    expect(await leaseOwners()).toEqual({ 'with-agent': null, 'without-agent': null });
  });

  it('keeps a mission leased for the retry delay instead of releasing it when asked to retry later', async () => {
    const store = createMissionStore(projection, { owner: 'i-1' });
    await store.refresh();
    const [claim] = (await store.claimDue({ limit: 10 })).filter((each) => each.mission.id === 'without-agent');
    await store.release(claim!, { retryAfterMs: 3_600_000 });
    const [row] = await db.sql<{ lease_owner: string | null; held_s: number }[]>`
      SELECT lease_owner, extract(epoch FROM lease_until - now())::float8 AS held_s
      FROM mana_ai.mission_snapshots WHERE mission_id = 'without-agent'`;
    expect(row?.lease_owner).toBe('i-1');
    expect(row?.held_s).toBeGreaterThan(3000);
  });

  it('hands each claim’s snapshot to its first write-back, which then does not read the mission again', async () => {
    const statements: string[] = [];
    const counted = db.connect({ url: await runnerUrl(db), max: 1, debug: (_connection, query) => statements.push(query) });
    const store = createMissionStore(createProjection({ sql: counted }, { leaseMs: 60_000 }), { owner: 'i-1' });
    await store.refresh();
    const claims = await store.claimDue({ limit: 10 });
    const request = (claim: MissionClaim) => {
      const now = new Date().toISOString();
      return {
        iteration: buildServerIteration({ iterationId: claim.iterationId, calls: [], summary: 'Fertig.', startedAt: now, finishedAt: now }),
        actor: makeAgentActor({ agentId: 'a-1', displayName: 'Agent a-1', missionId: claim.mission.id, iterationId: claim.iterationId, rationale: '' }),
        tokensUsed: 0,
      };
    };
    const functionsCalledBy = async (write: Promise<unknown>) => {
      statements.length = 0;
      const result = await write;
      return { result, calls: statements.map((query) => /mana_ai\.(\w+)\(/.exec(query)?.[1] ?? query.trim()) };
    };
    const [first, second] = claims;
    expect(await functionsCalledBy(store.writeIteration(first!, request(first!)))).toEqual({ result: { written: true }, calls: ['write_back_write'] });
    // A second write of the same claim (a retry) and a claim the store did not hand out read first.
    expect(await functionsCalledBy(store.writeIteration(first!, request(first!)))).toEqual({
      result: { written: false },
      calls: ['write_back_read', 'release_mission_leases'],
    });
    expect(await functionsCalledBy(store.writeIteration({ ...second! }, request(second!)))).toEqual({
      result: { written: true },
      calls: ['write_back_read', 'write_back_write'],
    });
    expect(await leaseOwners()).toEqual({ 'with-agent': null, 'without-agent': null });
  });

  describe('token usage of a run whose write-back failed', () => {
    /** Claims `with-agent` and builds its write-back the way core's mission run does. */
    async function claimAndBuild(store: ReturnType<typeof createMissionStore>) {
      await store.refresh();
      const claim = (await store.claimDue({ limit: 10 })).find((each) => each.mission.id === 'with-agent')!;
      const now = new Date().toISOString();
      const request = {
        iteration: buildServerIteration({ iterationId: claim.iterationId, calls: [], summary: 'Fertig.', startedAt: now, finishedAt: now }),
        actor: makeAgentActor({ agentId: 'a-1', displayName: 'Agent a-1', missionId: claim.mission.id, iterationId: claim.iterationId, rationale: '' }),
        tokensUsed: 500,
      };
      return { claim, request };
    }

    it('is not recorded again when the write-back committed and only its answer was lost', async () => {
      const store = createMissionStore(projection, { owner: 'i-1' });
      const { claim, request } = await claimAndBuild(store);
      expect(await store.writeIteration(claim, request)).toEqual({ written: true });
      // What the mission run does when writeIteration threw: record the run's tokens on their own.
      await store.recordTokenUsage(claim, 'a-1', 500);
      expect(await store.tokensUsedLast24h('u-1', 'a-1')).toBe(500);
    });

    it('is recorded for every run whose iteration was not written (failed plans and their retries)', async () => {
      const store = createMissionStore(projection, { owner: 'i-1' });
      const { claim } = await claimAndBuild(store);
      await store.recordTokenUsage(claim, 'a-1', 300);
      await store.recordTokenUsage(claim, 'a-1', 200);
      expect(await store.tokensUsedLast24h('u-1', 'a-1')).toBe(500);
    });

    it('waits for a write-back of the mission still in flight and then does not record its tokens again', async () => {
      const store = createMissionStore(projection, { owner: 'i-1' });
      const { claim, request } = await claimAndBuild(store);
      // The write-back stops inside its transaction (holding the mission's write lock) until the test lets it go.
      const gate = await db.sql.reserve();
      await gate`SELECT pg_advisory_lock(4242)`;
      await db.sql.unsafe(`
        CREATE FUNCTION public.hold_write_back() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NEW; END $$;
        CREATE TRIGGER hold_write_back BEFORE INSERT ON sync_changes FOR EACH ROW
          WHEN (NEW.client_id = 'mana-ai-runner') EXECUTE FUNCTION public.hold_write_back();`);
      try {
        const writing = store.writeIteration(claim, request);
        await waitForAdvisoryWaiters(1);
        let recorded = false;
        const recording = store.recordTokenUsage(claim, 'a-1', 500).then(() => {
          recorded = true;
        });
        // Either it waits for the write-back's lock, or (without that lock) it has already recorded.
        await vi.waitFor(async () => expect(recorded || (await advisoryWaiters()) === 2).toBe(true));
        await gate`SELECT pg_advisory_unlock(4242)`;
        await Promise.all([writing, recording]);
        expect(await store.tokensUsedLast24h('u-1', 'a-1')).toBe(500);
      } finally {
        gate.release();
        await db.sql.unsafe('DROP TRIGGER hold_write_back ON sync_changes; DROP FUNCTION public.hold_write_back();');
      }
    });
  });
});

/** Sessions of this database waiting for an advisory lock. */
async function advisoryWaiters(): Promise<number> {
  const [row] = await db.sql<{ n: number }[]>`
    SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`;
  return row?.n ?? 0;
}

async function waitForAdvisoryWaiters(count: number): Promise<void> {
  await vi.waitFor(async () => expect(await advisoryWaiters()).toBe(count), { timeout: 10_000 });
}

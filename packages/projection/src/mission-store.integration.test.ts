import { type MissionClaim, buildServerIteration, makeAgentActor } from '@mana-ai/core';
import { type TestDatabase, agentRecord, createTestDatabase, runnerUrl } from '@mana-ai/test-postgres';
import type { Sql } from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { clearProjection, connectAsRunner, databaseNowMs, insertChanges, isoAt, missionData, snapshotsOf } from '../test/helpers.js';
import { deriveIterationId } from './iteration-id.js';
import { mergeChanges } from './lww.js';
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

/** A mission store over a runner client of its own that records the `mana_ai` functions each write calls. */
async function countedStore() {
  const statements: string[] = [];
  const counted = createProjection({ sql: db.connect({ url: await runnerUrl(db), max: 1, debug: (_connection, query) => statements.push(query) }) }, { leaseMs: 60_000 });
  const functionsCalledBy = async (write: Promise<unknown>) => {
    statements.length = 0;
    const result = await write;
    return { result, calls: statements.map((query) => /mana_ai\.(\w+)\(/.exec(query)?.[1] ?? query.trim()) };
  };
  return { store: createMissionStore(counted, { owner: 'i-1' }), projection: counted, functionsCalledBy };
}

/** What core's mission run hands to `writeIteration` for `claim`: an empty plan, no tokens. */
function writeRequest(claim: MissionClaim) {
  const now = new Date().toISOString();
  return {
    iteration: buildServerIteration({ iterationId: claim.iterationId, calls: [], summary: 'Fertig.', startedAt: now, finishedAt: now }),
    actor: makeAgentActor({ agentId: 'a-1', displayName: 'Agent a-1', missionId: claim.mission.id, iterationId: claim.iterationId, rationale: '' }),
    tokensUsed: 0,
  };
}

/** The version (`xmin`) of each of u-1's mission snapshot rows. */
async function rowVersions(): Promise<Record<string, string>> {
  const rows = await db.sql<{ mission_id: string; version: string }[]>`
    SELECT mission_id, xmin::text AS version FROM mana_ai.mission_snapshots WHERE user_id = 'u-1' ORDER BY mission_id`;
  return Object.fromEntries(rows.map((row) => [row.mission_id, row.version]));
}

/** Refreshes, then expects the stored snapshot of u-1's `missionId` to equal a full replay of its log with the webapp's merge; returns it. */
async function expectSnapshotIsReplay(missionId: string): Promise<Record<string, unknown>> {
  await projection.refresh();
  const rows = await db.sql<{ op: string; data: unknown; field_meta: unknown; stamp: string }[]>`
    SELECT op, data, field_meta, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS stamp
    FROM sync_changes WHERE user_id = 'u-1' AND record_id = ${missionId} ORDER BY created_at, id`;
  const replayed = mergeChanges(
    rows.map((row) => ({ op: row.op, recordId: missionId, data: row.data, fieldMeta: row.field_meta, createdAt: row.stamp })),
    'mission',
  );
  const stored = (await snapshotsOf(db.sql, 'mission_snapshots')).get(`u-1/${missionId}`);
  expect({ id: missionId, ...stored }).toEqual(replayed);
  return stored!;
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
    const { store, functionsCalledBy } = await countedStore();
    await store.refresh();
    const claims = await store.claimDue({ limit: 10 });
    const [first, second] = claims;
    expect(await functionsCalledBy(store.writeIteration(first!, writeRequest(first!)))).toEqual({ result: { written: true }, calls: ['write_back_write'] });
    // A second write of the same claim (a retry) and a claim the store did not hand out read first.
    expect(await functionsCalledBy(store.writeIteration(first!, writeRequest(first!)))).toEqual({
      result: { written: false },
      calls: ['write_back_read', 'release_mission_leases'],
    });
    expect(await functionsCalledBy(store.writeIteration({ ...second! }, writeRequest(second!)))).toEqual({
      result: { written: true },
      calls: ['write_back_read', 'write_back_write'],
    });
    expect(await leaseOwners()).toEqual({ 'with-agent': null, 'without-agent': null });
  });

  describe('a claim whose lease the heartbeat renewed (migration 0012)', () => {
    it('still writes in one statement: the renewal moved the claimed snapshot to the row’s new version', async () => {
      const { store, projection: counted, functionsCalledBy } = await countedStore();
      const refused: unknown[] = [];
      counted.events.on('write-back.fast-refused', (event) => refused.push(event));
      await store.refresh();
      const claims = await store.claimDue({ limit: 10 });
      const versionsBefore = await rowVersions();
      expect(await store.renew?.(claims)).toEqual(claims);
      expect(await rowVersions()).not.toEqual(versionsBefore);
      const claim = claims.find((each) => each.mission.id === 'with-agent')!;
      expect(await functionsCalledBy(store.writeIteration(claim, writeRequest(claim)))).toEqual({ result: { written: true }, calls: ['write_back_write'] });
      expect(refused).toEqual([]);
      expect(await leaseOwners()).toEqual({ 'with-agent': null, 'without-agent': 'i-1' });
      await expectSnapshotIsReplay('with-agent');
    });

    it('falls back to the read and keeps the user’s edit when a refresh changed the snapshot before the renewal', async () => {
      const { store, projection: counted, functionsCalledBy } = await countedStore();
      const refused: unknown[] = [];
      counted.events.on('write-back.fast-refused', (event) => refused.push(event));
      await store.refresh();
      const claims = await store.claimDue({ limit: 10 });
      const claim = claims.find((each) => each.mission.id === 'with-agent')!;
      // A user's "run now" and a new title, applied to the snapshot by a refresh while the mission runs.
      const now = await databaseNowMs(db.sql);
      const runNow = isoAt(now);
      await insertChanges(db.sql, [
        { userId: 'u-1', recordId: 'with-agent', op: 'update', data: { nextRunAt: runNow, title: 'edited' }, fieldMeta: { nextRunAt: isoAt(now, 1), title: isoAt(now, 1) } },
      ]);
      expect(await store.refresh()).toMatchObject({ rowsApplied: 1 });
      expect(await store.renew?.(claims)).toEqual(claims);
      expect(await functionsCalledBy(store.writeIteration(claim, writeRequest(claim)))).toEqual({
        result: { written: true },
        calls: ['write_back_write', 'write_back_read', 'write_back_write'],
      });
      expect(refused).toEqual([{ userId: 'u-1', missionId: 'with-agent', iterationId: claim.iterationId }]);
      const stored = await expectSnapshotIsReplay('with-agent');
      expect(stored).toMatchObject({ nextRunAt: runNow, title: 'edited' });
      expect((stored.iterations as { id: string }[]).map((iteration) => iteration.id)).toEqual([claim.iterationId]);
    });
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

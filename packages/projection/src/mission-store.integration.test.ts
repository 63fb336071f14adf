import { type TestDatabase, agentRecord, createTestDatabase } from '@mana-ai/test-postgres';
import type { Sql } from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { connectAsRunner, insertChanges, missionData } from '../test/helpers.js';
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
  await db.sql`TRUNCATE sync_changes, mana_ai.mission_snapshots, mana_ai.agent_snapshots, mana_ai.snapshot_tombstones, mana_ai.projection_cursors`;
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
});

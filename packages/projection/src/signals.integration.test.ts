import { buildServerIteration, makeAgentActor } from '@mana-ai/core';
import { type TestDatabase, createTestDatabase } from '@mana-ai/test-postgres';
import type { Sql } from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ageLeases, clearProjection, connectAsRunner, databaseNowMs, insertChanges, isoAt, missionData } from '../test/helpers.js';
import { deriveIterationId } from './iteration-id.js';
import { type Projection, createProjection } from './projection.js';
import type { ProjectionSignal } from './signals.js';

let db: TestDatabase;
let runner: Sql;
let projection: Projection;
let t0: number;

const MINUTE = 60_000;
/** Slack for the time between reading the database's now in the test and in the projection. */
const SLACK = 5_000;

beforeAll(async () => {
  db = await createTestDatabase();
  runner = await connectAsRunner(db, { max: 6 });
});
afterAll(() => db.drop());

beforeEach(async () => {
  await clearProjection(db.sql);
  projection = createProjection({ sql: runner }, { leaseMs: 2 * MINUTE });
  t0 = await databaseNowMs(db.sql);
});

/** Waits until `predicate` holds (or `ms` pass) and returns whether it did. */
async function eventually(predicate: () => boolean, ms = 5_000): Promise<boolean> {
  const until = Date.now() + ms;
  while (!predicate() && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20));
  return predicate();
}

describe('databaseNow', () => {
  it('returns the database clock in epoch milliseconds', async () => {
    const before = await databaseNowMs(db.sql);
    const now = await projection.databaseNow();
    expect(Number.isInteger(now)).toBe(true);
    expect(now).toBeGreaterThanOrEqual(before);
    expect(Math.abs(now - Date.now())).toBeLessThan(SLACK);
  });
});

describe('nextDueInMs', () => {
  it('is null when nothing is scheduled, and ignores paused, deleted and unscheduled missions', async () => {
    expect(await projection.nextDueInMs()).toBeNull();
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'paused', data: missionData('paused', { state: 'paused', nextRunAt: isoAt(t0, -MINUTE) }) },
      { userId: 'u-1', recordId: 'gone', data: missionData('gone', { deletedAt: isoAt(t0), nextRunAt: isoAt(t0, -MINUTE) }) },
      { userId: 'u-1', recordId: 'manual', data: missionData('manual', { nextRunAt: null }) },
    ]);
    await projection.refresh();
    expect(await projection.nextDueInMs()).toBeNull();
  });

  it('counts down to the earliest next run, with or without an agent, and is ≤ 0 once one is due', async () => {
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'later', data: missionData('later', { nextRunAt: isoAt(t0, 20 * MINUTE) }) },
      { userId: 'u-1', recordId: 'agent', data: missionData('agent', { agentId: 'a-1', nextRunAt: isoAt(t0, 10 * MINUTE) }) },
    ]);
    await projection.refresh();
    const wait = await projection.nextDueInMs();
    expect(wait).toBeGreaterThan(10 * MINUTE - SLACK);
    expect(wait).toBeLessThanOrEqual(10 * MINUTE);
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'now', data: missionData('now', { nextRunAt: isoAt(t0, -MINUTE) }) }]);
    await projection.refresh();
    expect(await projection.nextDueInMs()).toBeLessThanOrEqual(0);
  });

  it('waits for the lease to end, not for the backlog, when an agent sits at its limit', async () => {
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'a-1', table: 'agents', data: { name: 'One', maxConcurrentMissions: 1 } }]);
    await insertChanges(
      db.sql,
      Array.from({ length: 5 }, (_, index) => ({
        userId: 'u-1',
        recordId: `m-${index}`,
        data: missionData(`m-${index}`, { agentId: 'a-1', nextRunAt: isoAt(t0, -MINUTE) }),
      })),
    );
    await projection.refresh();
    expect(await projection.claimDue({ owner: 'A', limit: 10 })).toHaveLength(1);
    // Four due missions wait for the agent's slot: the dispatcher must not spin on them.
    const wait = await projection.nextDueInMs();
    expect(wait).toBeGreaterThan(2 * MINUTE - SLACK);
    expect(wait).toBeLessThanOrEqual(2 * MINUTE);
    // A mission of another agent due sooner wins; once the lease has run out, the backlog is due.
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'other', data: missionData('other', { agentId: 'a-2', nextRunAt: isoAt(t0, MINUTE) }) }]);
    await projection.refresh();
    expect(await projection.nextDueInMs()).toBeLessThanOrEqual(MINUTE);
    await ageLeases(db.sql, 2 * MINUTE);
    expect(await projection.nextDueInMs()).toBeLessThanOrEqual(0);
  });

  it('is ≤ 0 while an agent with a free slot has due missions beside a running one', async () => {
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'a-2', table: 'agents', data: { name: 'Two', maxConcurrentMissions: 2 } }]);
    await insertChanges(db.sql, [
      { userId: 'u-1', recordId: 'first', data: missionData('first', { agentId: 'a-2', nextRunAt: isoAt(t0, -2 * MINUTE) }) },
      { userId: 'u-1', recordId: 'second', data: missionData('second', { agentId: 'a-2', nextRunAt: isoAt(t0, -MINUTE) }) },
      { userId: 'u-1', recordId: 'third', data: missionData('third', { agentId: 'a-2', nextRunAt: isoAt(t0, -MINUTE) }) },
    ]);
    await projection.refresh();
    expect((await projection.claimDue({ owner: 'A', limit: 1 })).map((claim) => claim.mission.id)).toEqual(['first']);
    expect(await projection.nextDueInMs()).toBeLessThanOrEqual(0);
    expect(await projection.claimDue({ owner: 'A', limit: 1 })).toHaveLength(1);
    // Both slots taken: the next moment is the first lease's end.
    expect(await projection.nextDueInMs()).toBeGreaterThan(2 * MINUTE - SLACK);
  });

  it('follows the write-back: the advanced next run is the next wake-up', async () => {
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'm-1', data: missionData('m-1', { agentId: 'a-1', nextRunAt: isoAt(t0, -MINUTE) }) }]);
    await projection.refresh();
    const [claim] = await projection.claimDue({ owner: 'A', limit: 1 });
    const iterationId = await deriveIterationId('m-1', claim!.dueSlot);
    const now = isoAt(t0);
    await projection.writeIteration({
      userId: 'u-1',
      missionId: 'm-1',
      dueSlot: claim!.dueSlot,
      iteration: buildServerIteration({ iterationId, calls: [], summary: '', startedAt: now, finishedAt: now }),
      actor: makeAgentActor({ agentId: 'a-1', displayName: 'Mana', missionId: 'm-1', iterationId, rationale: '' }),
      owner: 'A',
    });
    // The write-back leaves the lane's head early (it never waits on the lane lock): the next claim
    // finds nothing due there and corrects it.
    expect(await projection.nextDueInMs()).toBeLessThanOrEqual(0);
    expect(await projection.claimDue({ owner: 'A', limit: 1 })).toEqual([]);
    const wait = await projection.nextDueInMs();
    expect(wait).toBeGreaterThan(60 * MINUTE - SLACK);
    expect(wait).toBeLessThanOrEqual(60 * MINUTE);
  });
});

describe('hasPendingChanges', () => {
  it('tells whether the feed holds mission or agent rows after the snapshot cursor', async () => {
    expect(await projection.hasPendingChanges()).toBe(false);
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'n-1', appId: 'notes', table: 'notes', data: { title: 'x' } }]);
    expect(await projection.hasPendingChanges()).toBe(false);
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'm-1', data: missionData('m-1') }]);
    expect(await projection.hasPendingChanges()).toBe(true);
    await projection.refresh();
    expect(await projection.hasPendingChanges()).toBe(false);
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'a-1', table: 'agents', data: { name: 'Mana' } }]);
    expect(await projection.hasPendingChanges()).toBe(true);
  });
});

describe('watch', () => {
  it('signals changes from devices, not the runner’s own rows or other apps, and due after a refresh', async () => {
    const signals: ProjectionSignal[] = [];
    const watch = await projection.watch((signal) => signals.push(signal));
    try {
      expect(watch.notifying).toBe(true);
      await db.sql`
        INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
        VALUES ('ai', 'aiMissions', 'm-0', 'u-1', 'update', '{}', 'mana-ai-runner'),
               ('notes', 'notes', 'n-1', 'u-1', 'insert', '{}', 'device'),
               ('ai', 'tasks', 't-1', 'u-1', 'insert', '{}', 'device')`;
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(signals).toEqual([]);
      await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'm-1', data: missionData('m-1', { nextRunAt: isoAt(t0, -MINUTE) }) }]);
      expect(await eventually(() => signals.includes('changes'))).toBe(true);
      // Another instance refreshes: this one hears that missions may be due.
      const other = createProjection({ sql: db.connect({ max: 1 }) });
      expect((await other.refresh()).rowsApplied).toBe(2);
      expect(await eventually(() => signals.includes('due'))).toBe(true);
      const heard = signals.length;
      // A refresh that applies nothing stays silent.
      expect((await other.refresh()).rowsRead).toBe(0);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(signals).toHaveLength(heard);
    } finally {
      await watch.close();
    }
    const heard = signals.length;
    await insertChanges(db.sql, [{ userId: 'u-1', recordId: 'm-2', data: missionData('m-2') }]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(signals).toHaveLength(heard);
    await watch.close();
  });

  it('reports notifying: false when the change trigger is not installed, so the caller polls', async () => {
    await db.sql`DROP TRIGGER mana_ai_notify_changes ON public.sync_changes`;
    const watch = await projection.watch(() => {});
    try {
      expect(watch.notifying).toBe(false);
    } finally {
      await watch.close();
    }
  });
});

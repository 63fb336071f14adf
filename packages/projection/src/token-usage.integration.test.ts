import { type TestDatabase, createTestDatabase } from '@mana-ai/test-postgres';
import type { Sql } from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { connectAsRunner } from '../test/helpers.js';
import { type Projection, createProjection } from './projection.js';

let db: TestDatabase;
let runner: Sql;
let projection: Projection;

beforeAll(async () => {
  db = await createTestDatabase();
  runner = await connectAsRunner(db);
  projection = createProjection({ sql: runner });
});
afterAll(() => db.drop());
beforeEach(async () => {
  await db.sql`TRUNCATE mana_ai.token_usage`;
});

/** Inserts a row `hoursAgo` before the database's now, as the superuser. */
async function spend(userId: string, agentId: string, tokens: number, hoursAgo: number): Promise<void> {
  await db.sql`
    INSERT INTO mana_ai.token_usage (user_id, agent_id, mission_id, tokens_used, ts)
    VALUES (${userId}, ${agentId}, 'm-1', ${tokens}, now() - make_interval(secs => ${hoursAgo * 3600}))`;
}

async function remainingHoursAgo(): Promise<number[]> {
  const rows = await db.sql<{ hours: number }[]>`
    SELECT round(extract(epoch FROM now() - ts) / 3600)::int AS hours FROM mana_ai.token_usage ORDER BY ts`;
  return rows.map((row) => row.hours);
}

describe('pruneTokenUsage', () => {
  it('deletes rows past the retention of every user oldest first, at most maxRows per call, as the least-privileged runner', async () => {
    await spend('u-1', 'a-1', 100, 200);
    await spend('u-2', 'a-2', 100, 100);
    await spend('u-1', 'a-1', 100, 72);
    await spend('u-2', 'a-2', 100, 49);
    await spend('u-1', 'a-1', 7, 30);
    await spend('u-1', 'a-1', 5, 2);
    await spend('u-2', 'a-2', 3, 1);

    expect(await projection.pruneTokenUsage({ maxRows: 3 })).toBe(3);
    expect(await remainingHoursAgo()).toEqual([49, 30, 2, 1]);
    expect(await projection.pruneTokenUsage({ maxRows: 3 })).toBe(1);
    expect(await projection.pruneTokenUsage({ maxRows: 3 })).toBe(0);
    // The 24 h budget window is never touched.
    expect(await remainingHoursAgo()).toEqual([30, 2, 1]);
    expect(await projection.tokenUsageLast24h('u-1', 'a-1')).toBe(5);
    expect(await projection.tokenUsageLast24h('u-2', 'a-2')).toBe(3);
  });

  it('keeps every row younger than 24 hours whatever retention it is asked for', async () => {
    await spend('u-1', 'a-1', 1, 23);
    await spend('u-1', 'a-1', 1, 25);
    await expect(projection.pruneTokenUsage({ olderThanMs: 3_600_000 })).rejects.toMatchObject({ code: 'PROJECTION_INVALID_ARGUMENT' });
    // The function itself holds the floor, whoever calls it.
    const [row] = await runner<{ deleted: number }[]>`SELECT mana_ai.prune_token_usage(0, 100) AS deleted`;
    expect(row?.deleted).toBe(1);
    expect(await remainingHoursAgo()).toEqual([23]);
  });

  it('refuses a batch size outside 1..100000', async () => {
    for (const maxRows of [0, 1.5, 100_001]) {
      await expect(projection.pruneTokenUsage({ maxRows })).rejects.toMatchObject({ code: 'PROJECTION_INVALID_ARGUMENT' });
    }
  });
});

import { createManualClock } from '@mana-ai/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessRunner, startInProcessRunner } from '../support/in-process-runner.js';
import { type TestDatabase, createTestDatabase, insertLogRows, missionRecord } from '../support/security-database.js';

const NOBODY = 'Objective nobody may read';

let db: TestDatabase;
let runner: InProcessRunner;

beforeAll(async () => {
  db = await createTestDatabase();
  // A mission row without a user (mana-sync never writes one, a broken import might), between two
  // users' missions; all three are due.
  await insertLogRows(db.sql, [
    { userId: 'u-first', recordId: 'm-first', dataJson: JSON.stringify(missionRecord('m-first')) },
    { userId: '', recordId: 'm-nobody', dataJson: JSON.stringify(missionRecord('m-nobody', { objective: NOBODY })) },
    { userId: 'u-last', recordId: 'm-last', dataJson: JSON.stringify(missionRecord('m-last')) },
  ]);
  runner = await startInProcessRunner(db, {
    serviceKey: 'empty-user-id-key',
    instanceId: 'empty-user',
    clock: createManualClock('2026-05-01T00:00:00.000Z'),
    config: { concurrency: 4 },
  });
});
afterAll(async () => {
  await runner?.close();
  await db.drop();
});

describe('a mission row whose user id is empty', () => {
  it('is skipped by the refresh, never reaches the LLM, and the other missions plan', async () => {
    const stats = await runner.tick();
    expect(stats.errors).toEqual([]);
    expect(stats.plansWrittenBack).toBe(2);
    expect(runner.llm.requests.length).toBeGreaterThanOrEqual(2);
    expect(JSON.stringify(runner.llm.requests.map((request) => request.body))).not.toContain(NOBODY);
    const written = await db.sql<{ key: string }[]>`
      SELECT user_id || '/' || record_id AS key FROM sync_changes WHERE client_id = 'mana-ai-runner' ORDER BY 1`;
    expect(written.map((row) => row.key)).toEqual(['u-first/m-first', 'u-last/m-last']);
    expect(await db.sql`SELECT 1 FROM mana_ai.mission_snapshots WHERE user_id = ''`).toHaveLength(0);
    const metrics = (await runner.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^mana_ai_snapshot_bad_rows_total(\{[^}]*\})? 1$/m);
  });
});

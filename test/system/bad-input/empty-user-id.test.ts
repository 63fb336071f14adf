import { createManualClock } from '@mana-ai/core';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from '@mana-ai/planner/testing';
import type { Sql } from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../../apps/runner/src/app.js';
import { createLogger } from '../../../apps/runner/src/logger.js';
import { type TestDatabase, connectAsRunner, createTestDatabase, insertLogRows, missionRecord } from '../support/security-database.js';

type App = ReturnType<typeof buildApp>;

const SERVICE_KEY = 'empty-user-id-key';
const NOBODY = 'Objective nobody may read';

let db: TestDatabase;
let runner: Sql;
let llm: FakeLlmServer;
let app: App;

beforeAll(async () => {
  db = await createTestDatabase();
  runner = await connectAsRunner(db);
  // A mission row without a user (mana-sync never writes one, a broken import might), between two
  // users' missions; all three are due.
  await insertLogRows(db.sql, [
    { userId: 'u-first', recordId: 'm-first', dataJson: JSON.stringify(missionRecord('m-first')) },
    { userId: '', recordId: 'm-nobody', dataJson: JSON.stringify(missionRecord('m-nobody', { objective: NOBODY })) },
    { userId: 'u-last', recordId: 'm-last', dataJson: JSON.stringify(missionRecord('m-last')) },
  ]);
  llm = await createFakeLlmServer({ defaultReply: fakeReplies.text('Nichts zu tun.') });
  app = buildApp(
    { sql: runner, logger: createLogger({ level: 'silent' }), clock: createManualClock('2026-05-01T00:00:00.000Z') },
    {
      serviceKey: SERVICE_KEY,
      tickIntervalMs: 60_000,
      tickEnabled: false,
      shutdownTimeoutMs: 5000,
      llmUrl: llm.url,
      llmMaxRetries: 0,
      apiUrl: 'http://127.0.0.1:1',
      researchUrl: 'http://127.0.0.1:1',
      concurrency: 4,
      instanceId: 'empty-user',
    },
  );
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await llm?.close();
  await db.drop();
});

describe('a mission row whose user id is empty', () => {
  it('is skipped by the refresh, never reaches the LLM, and the other missions plan', async () => {
    const response = await app.inject({ method: 'POST', url: '/internal/tick', headers: { 'x-service-key': SERVICE_KEY } });
    expect(response.statusCode).toBe(200);
    const stats = response.json();
    expect(stats.errors).toEqual([]);
    expect(stats.plansWrittenBack).toBe(2);
    expect(llm.requests.length).toBeGreaterThanOrEqual(2);
    expect(JSON.stringify(llm.requests.map((request) => request.body))).not.toContain(NOBODY);
    const written = await db.sql<{ key: string }[]>`
      SELECT user_id || '/' || record_id AS key FROM sync_changes WHERE client_id = 'mana-ai-runner' ORDER BY 1`;
    expect(written.map((row) => row.key)).toEqual(['u-first/m-first', 'u-last/m-last']);
    expect(await db.sql`SELECT 1 FROM mana_ai.mission_snapshots WHERE user_id = ''`).toHaveLength(0);
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^mana_ai_snapshot_bad_rows_total(\{[^}]*\})? 1$/m);
  });
});

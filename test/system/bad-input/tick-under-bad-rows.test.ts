import { createManualClock } from '@mana-ai/core';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from '@mana-ai/planner/testing';
import fc from 'fast-check';
import type { Sql } from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../../apps/runner/src/app.js';
import { createLogger } from '../../../apps/runner/src/logger.js';
import { fuzzRecords } from '../support/fuzz-rows.js';
import {
  type LogRow,
  type TestDatabase,
  agentRecord,
  connectAsRunner,
  createTestDatabase,
  insertLogRows,
  missionRecord,
} from '../support/security-database.js';

type App = ReturnType<typeof buildApp>;

const NOW = '2026-05-01T00:00:00.000Z';
const SERVICE_KEY = 'tick-bad-rows-key';
const clock = createManualClock(NOW);

let db: TestDatabase;
let runner: Sql;
let llm: FakeLlmServer;
let app: App;
const valid: { userId: string; missionId: string }[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  runner = await connectAsRunner(db);
  // A fixed sample of malformed histories (same generator and seed as the fuzz suite), with one
  // valid mission per user after them, some of them run by an agent whose own record is garbage.
  const samples = fc.sample(fuzzRecords, { seed: 99, numRuns: 25 });
  const rows: LogRow[] = [];
  samples.forEach((records, run) => {
    const userId = `u-tick-${run}`;
    records.forEach((record, r) => {
      const recordId = `${record.table === 'aiMissions' ? 'm' : 'a'}-${run}-${r}`;
      if (record.validFirst) {
        const data = record.table === 'aiMissions' ? missionRecord(recordId, { agentId: `a-${run}-0` }) : agentRecord(recordId);
        rows.push({ userId, recordId, table: record.table, dataJson: JSON.stringify(data) });
      }
      for (const row of record.rows) {
        rows.push({ userId, recordId, table: row.table, op: row.op, dataJson: row.dataJson, fieldMetaJson: row.fieldMetaJson });
      }
    });
    const missionId = `m-valid-${run}`;
    rows.push({ userId, recordId: missionId, dataJson: JSON.stringify(missionRecord(missionId, { agentId: run % 2 === 0 ? `a-${run}-0` : undefined })) });
    valid.push({ userId, missionId });
  });
  await insertLogRows(db.sql, rows);
  llm = await createFakeLlmServer({ defaultReply: fakeReplies.text('Nichts zu tun.') });
  app = buildApp(
    { sql: runner, logger: createLogger({ level: 'silent' }), clock },
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
      instanceId: 'bad-rows',
    },
  );
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await llm?.close();
  await db.drop();
});

describe('a tick over a log full of malformed mission and agent rows', () => {
  it('refreshes and claims without errors and plans every valid mission', async () => {
    const response = await app.inject({ method: 'POST', url: '/internal/tick', headers: { 'x-service-key': SERVICE_KEY } });
    expect(response.statusCode).toBe(200);
    const stats = response.json();
    expect(stats.errors).toEqual([]);
    const written = await db.sql<{ key: string }[]>`
      SELECT DISTINCT user_id || '/' || record_id AS key FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    const planned = new Set(written.map((row) => row.key));
    const unplanned = valid.filter(({ userId, missionId }) => !planned.has(`${userId}/${missionId}`));
    // The only valid missions left unplanned are those whose agent a malformed row left paused or
    // archived (the agent gates), and they are few.
    for (const { userId, missionId } of unplanned) {
      const agent = await app.manaProjection.loadAgent(userId, `a-${missionId.slice('m-valid-'.length)}-0`);
      expect({ missionId, state: agent?.state }).toEqual({ missionId, state: expect.stringMatching(/^(paused|archived)$/) });
    }
    expect(unplanned.length).toBeLessThan(valid.length / 4);
    expect(stats.plansWrittenBack).toBeGreaterThanOrEqual(valid.length - unplanned.length);
    const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^mana_ai_snapshot_bad_rows_total\{[^}]*\} [1-9]\d*$/m);
    expect(metrics).not.toMatch(/^mana_ai_tick_errors_total\{[^}]*\} [1-9]/m);
  });
});

import { createManualClock } from '@mana-ai/core';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuzzRecords } from '../support/fuzz-rows.js';
import { type InProcessRunner, startInProcessRunner } from '../support/in-process-runner.js';
import {
  type LogRow,
  type TestDatabase,
  agentRecord,
  createTestDatabase,
  insertLogRows,
  missionRecord,
} from '../support/security-database.js';

const NOW = '2026-05-01T00:00:00.000Z';
const SERVICE_KEY = 'tick-bad-rows-key';
const clock = createManualClock(NOW);

let db: TestDatabase;
let runner: InProcessRunner;
const valid: { userId: string; missionId: string }[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
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
  runner = await startInProcessRunner(db, { serviceKey: SERVICE_KEY, instanceId: 'bad-rows', clock, config: { concurrency: 4 } });
});
afterAll(async () => {
  await runner?.close();
  await db.drop();
});

describe('a tick over a log full of malformed mission and agent rows', () => {
  it('refreshes and claims without errors and plans every valid mission', async () => {
    const stats = await runner.tick();
    expect(stats.errors).toEqual([]);
    const written = await db.sql<{ key: string }[]>`
      SELECT DISTINCT user_id || '/' || record_id AS key FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    const planned = new Set(written.map((row) => row.key));
    const unplanned = valid.filter(({ userId, missionId }) => !planned.has(`${userId}/${missionId}`));
    // The only valid missions left unplanned are those whose agent a malformed row left paused or
    // archived (the agent gates), and they are few.
    for (const { userId, missionId } of unplanned) {
      const agent = await runner.app.manaProjection.loadAgent(userId, `a-${missionId.slice('m-valid-'.length)}-0`);
      expect({ missionId, state: agent?.state }).toEqual({ missionId, state: expect.stringMatching(/^(paused|archived)$/) });
    }
    expect(unplanned.length).toBeLessThan(valid.length / 4);
    expect(stats.plansWrittenBack).toBeGreaterThanOrEqual(valid.length - unplanned.length);
    const metrics = (await runner.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^mana_ai_snapshot_bad_rows_total\{[^}]*\} [1-9]\d*$/m);
    expect(metrics).not.toMatch(/^mana_ai_tick_errors_total\{[^}]*\} [1-9]/m);
  });
});

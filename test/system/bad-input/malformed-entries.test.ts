import { createManualClock } from '@mana-ai/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../apps/runner/src/logger.js';
import { type InProcessRunner, startInProcessRunner } from '../support/in-process-runner.js';
import { type TestDatabase, createTestDatabase, insertLogRows, missionRecord } from '../support/security-database.js';

const SERVICE_KEY = 'malformed-entries-key';
const USER = 'u-malformed';
const clock = createManualClock('2026-05-01T00:00:00.000Z');
const ITERATION = { id: 'it-old', startedAt: '2026-04-20T08:00:00.000Z', plan: [], overallStatus: 'approved', summary: 'Alte Runde' };
const GOAL = { module: 'goals', table: 'goals', id: 'g1' };

// Each mission as a device could write it: one bad entry beside good ones.
const MISSIONS: Record<string, Record<string, unknown>> = {
  'm-null-input': { inputs: [null, GOAL] },
  'm-scalar-input': { inputs: ['notes/n1', 7, { module: 'goals', table: 'goals' }, GOAL] },
  'm-null-iteration': { iterations: [null, ITERATION] },
  'm-object-started-at': { iterations: [{ ...ITERATION, id: 'it-bad', startedAt: { toString: 'x' } }, ITERATION] },
  'm-null-step': { iterations: [{ ...ITERATION, id: 'it-step', plan: [null, 3] }, ITERATION] },
  'm-valid': { inputs: [GOAL], iterations: [ITERATION] },
};

let db: TestDatabase;
let runner: InProcessRunner;
const logLines: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  await insertLogRows(db.sql, [
    { userId: USER, recordId: 'g1', appId: 'goals', table: 'goals', dataJson: JSON.stringify({ title: 'Laufen', currentValue: 3, target: { value: 10 } }) },
    ...Object.entries(MISSIONS).map(([id, overrides]) => ({ userId: USER, recordId: id, dataJson: JSON.stringify(missionRecord(id, overrides)) })),
  ]);
  runner = await startInProcessRunner(db, {
    serviceKey: SERVICE_KEY,
    instanceId: 'malformed-entries',
    clock,
    logger: createLogger({ level: 'warn', destination: { write: (line: string) => void logLines.push(line) } }),
  });
});
afterAll(async () => {
  await runner?.close();
  await db?.drop();
});

describe('missions whose inputs or iterations hold malformed entries', () => {
  it('plans every mission, skipping each bad entry with a reason, when a device wrote them', async () => {
    const stats = await runner.tick();
    expect(stats.errors).toEqual([]);
    expect(stats.plansWrittenBack).toBe(Object.keys(MISSIONS).length);

    // Each bad entry is reported once, with its position and reason, never its content.
    const skipped = logLines.map((line) => JSON.parse(line)).filter((line) => line.msg === 'malformed mission entry skipped');
    const summary = skipped.map(({ missionId, field, index, reason, key }) => ({ missionId, field, index, reason, key }));
    expect(summary).toEqual(
      expect.arrayContaining([
        { missionId: 'm-null-input', field: 'inputs', index: 0, reason: 'not-object', key: undefined },
        { missionId: 'm-scalar-input', field: 'inputs', index: 0, reason: 'not-object', key: undefined },
        { missionId: 'm-scalar-input', field: 'inputs', index: 1, reason: 'not-object', key: undefined },
        { missionId: 'm-scalar-input', field: 'inputs', index: 2, reason: 'field-type', key: 'id' },
        { missionId: 'm-null-iteration', field: 'iterations', index: 0, reason: 'not-object', key: undefined },
        { missionId: 'm-object-started-at', field: 'iterations', index: 0, reason: 'field-type', key: 'startedAt' },
        { missionId: 'm-null-step', field: 'iterations', index: 0, reason: 'field-type', key: 'plan' },
      ]),
    );
    expect(summary).toHaveLength(7);
    const metrics = (await runner.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^mana_ai_mission_entries_skipped_total\{field="inputs",reason="not-object"[^}]*\} 3$/m);
    expect(metrics).toMatch(/^mana_ai_mission_entries_skipped_total\{field="inputs",reason="field-type"[^}]*\} 1$/m);
    expect(metrics).toMatch(/^mana_ai_mission_entries_skipped_total\{field="iterations",reason="not-object"[^}]*\} 1$/m);
    expect(metrics).toMatch(/^mana_ai_mission_entries_skipped_total\{field="iterations",reason="field-type"[^}]*\} 2$/m);

    // The good entries beside the bad ones are used: the goal reaches the prompt, the old iteration too.
    const prompts = runner.llm.requests.map((request) => request.rawBody);
    expect(prompts.filter((body) => body.includes('Fortschritt: 3 / 10'))).toHaveLength(3);
    expect(prompts.filter((body) => body.includes('Alte Runde'))).toHaveLength(4);

    // Nothing is lost: the write-back appends to the iterations as stored, the bad entry included.
    const [row] = await db.sql<{ iterations: unknown[] }[]>`
      SELECT data->'iterations' AS iterations FROM sync_changes
      WHERE client_id = 'mana-ai-runner' AND record_id = 'm-null-iteration'`;
    expect(row?.iterations.slice(0, 2)).toEqual([null, ITERATION]);
    expect(row?.iterations).toHaveLength(3);
  });
});

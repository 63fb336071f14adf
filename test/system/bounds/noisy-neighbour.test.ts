import { systemClock } from '@mana-ai/core';
import { createGrantIssuer } from '@mana-ai/crypto';
import { generateTestKeyPair, testMasterKey } from '@mana-ai/crypto/testing';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from '@mana-ai/planner/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestDatabase, createTestDatabase, insertLogRows, missionRecord } from '../support/security-database.js';
import { type BuiltRunner, metricValue, startBuiltRunner } from '../support/runner-process.js';

const SERVICE_KEY = 'noisy-neighbour-service-key';
const NOISY_USER = 'u-noisy';
const NOISY_MISSION = 'm-noisy';
const LISTED = 5000;
const MAX_INPUTS = 200;
const NEIGHBOURS = Array.from({ length: 6 }, (_, index) => ({ userId: `u-neighbour-${index}`, missionId: `m-neighbour-${index}` }));

let db: TestDatabase;
let llm: FakeLlmServer;
let runner: BuiltRunner | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  // A valid grant (the runner uses the real clock) over one note: every table the mission names
  // below is outside it, so each resolved input writes a scope-violation audit row and counts in a
  // metric labelled by the table the user chose.
  const keys = await generateTestKeyPair();
  const grant = await createGrantIssuer({ clock: systemClock }, { publicKey: keys.publicKeyPem }).issue(testMasterKey(), {
    missionId: NOISY_MISSION,
    tables: ['notes'],
    recordIds: ['notes:n1'],
    ttlMs: 3_600_000,
  });
  const inputs = Array.from({ length: LISTED }, (_, index) => ({ module: 'notes', table: `user-table-${index}`, id: `r${index}` }));
  await insertLogRows(db.sql, [
    { userId: NOISY_USER, recordId: NOISY_MISSION, dataJson: JSON.stringify(missionRecord(NOISY_MISSION, { grant, inputs })) },
    ...NEIGHBOURS.map(({ userId, missionId }) => ({ userId, recordId: missionId, dataJson: JSON.stringify(missionRecord(missionId)) })),
  ]);
  llm = await createFakeLlmServer({ defaultReply: fakeReplies.text('Nichts zu tun.') });
  runner = await startBuiltRunner({
    DATABASE_URL: db.url,
    MANA_SERVICE_KEY: SERVICE_KEY,
    MANA_LLM_URL: llm.url,
    MANA_LLM_MAX_RETRIES: '0',
    MANA_AI_PRIVATE_KEY_PEM: keys.privateKeyPem,
    MANA_API_URL: 'http://127.0.0.1:1',
    MANA_RESEARCH_URL: 'http://127.0.0.1:1',
    MANA_AUTH_URL: 'http://127.0.0.1:1',
    TICK_ENABLED: 'false',
    LOG_LEVEL: 'warn',
    MANA_AI_INSTANCE_ID: 'noisy-neighbour',
  });
}, 120_000);

afterAll(async () => {
  await runner?.stop(10_000);
  await llm?.close();
  await db?.drop();
});

describe('a mission that lists 5,000 inputs beside six other users’ missions', () => {
  it('resolves only the first 200, labels no metric with its tables, keeps /health at 200 and plans everyone', async () => {
    const baseUrl = runner?.baseUrl ?? '';
    const tick = fetch(`${baseUrl}/internal/tick`, { method: 'POST', headers: { 'x-service-key': SERVICE_KEY } }).then(async (response) => ({
      status: response.status,
      stats: (await response.json()) as { plansWrittenBack: number; errors: string[] },
    }));
    let tickDone = false;
    void tick.finally(() => {
      tickDone = true;
    });
    // /health while the tick resolves the inputs: its database check must not queue behind them.
    const health: number[] = [];
    do {
      const response = await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(10_000) });
      health.push(response.status);
      await response.arrayBuffer();
    } while (!tickDone);
    const { status, stats } = await tick;
    expect(status).toBe(200);
    expect(stats.errors).toEqual([]);
    expect(health.filter((code) => code !== 200)).toEqual([]);

    // Every mission is planned: the six neighbours and the noisy one with its first 200 inputs.
    expect(stats.plansWrittenBack).toBe(NEIGHBOURS.length + 1);
    const written = await db.sql<{ record_id: string }[]>`
      SELECT DISTINCT record_id FROM sync_changes WHERE client_id = 'mana-ai-runner' ORDER BY record_id`;
    expect(written.map((row) => row.record_id)).toEqual([NOISY_MISSION, ...NEIGHBOURS.map((neighbour) => neighbour.missionId)].sort());

    // The first 200 inputs in the mission's order, one audit row each; none of the rest.
    const audit = await db.sql<{ record_id: string }[]>`
      SELECT record_id FROM mana_ai.decrypt_audit WHERE mission_id = ${NOISY_MISSION}`;
    expect(audit).toHaveLength(MAX_INPUTS);
    expect(new Set(audit.map((row) => row.record_id))).toEqual(new Set(Array.from({ length: MAX_INPUTS }, (_, index) => `r${index}`)));

    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    expect(metrics).not.toContain('user-table-');
    expect(metricValue(metrics, 'mana_ai_grant_scope_violations_total', { table: 'other' })).toBe(MAX_INPUTS);
    expect(metricValue(metrics, 'mana_ai_inputs_dropped_total', { reason: 'max-inputs-per-mission' })).toBe(LISTED - MAX_INPUTS);
    expect(runner?.output()).toContain('mission inputs beyond the bound not resolved');
  });
});

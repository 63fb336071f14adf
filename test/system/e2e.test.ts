import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MissionCadence, TickStats } from '@mana-ai/core';
import { type TestKeyPair, generateTestKeyPair, testMasterKey } from '@mana-ai/crypto/testing';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from '@mana-ai/planner/testing';
import { deriveIterationId } from '@mana-ai/projection';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type SeededMission,
  type WebappClient,
  createWebappClient,
  seedMissionWithNote,
  writeAgent,
  writeMission,
} from '../../apps/runner/src/demo/seed.js';
// The harness is a private workspace package the root does not depend on: imported by path.
import { type TestDatabase, createTestDatabase } from '../../tooling/test-postgres/src/index.js';
import { type BuiltRunner, metricValue, startBuiltRunner } from './support/runner-process.js';
import { runnerUrl } from './support/security-database.js';

const SERVICE_KEY = 'e2e-service-key-0123456789abcdef';
const USER = `u-e2e-${randomUUID()}`;
const AGENT_NAME = 'Haushaltsplaner';
const OBJECTIVE = 'Plane die Einkäufe dieser Woche';
const NOTE = { title: 'Einkaufsliste', content: 'Milch, Hafermehl und Kaffeebohnen fehlen; Budget 40 Euro.' };
const CADENCE: MissionCadence = { kind: 'interval', everyMinutes: 60 };
const TOOL_ARGS = { title: 'Milch, Hafermehl und Kaffeebohnen kaufen', priority: 'high' };
const FINAL_TEXT = 'Ich habe einen Task für den Einkauf angelegt.';
// Exact usage per call, so the recorded spend is known: (400 + 30) + (460 + 12).
const TOKENS = 902;
// Due five minutes ago, at millisecond precision as the webapp stamps it.
const DUE_AT = new Date(Math.floor(Date.now() / 1000) * 1000 - 5 * 60_000).toISOString();

interface RunnerRow {
  app_id: string;
  table_name: string;
  record_id: string;
  user_id: string;
  op: string;
  client_id: string;
  schema_version: number;
  origin: string | null;
  space_id: string | null;
  data: string;
  field_meta: string;
  actor: string;
}

let db: TestDatabase;
let keys: TestKeyPair;
let llm: FakeLlmServer;
let runner: BuiltRunner;
let webapp: WebappClient;
let seeded: SeededMission;
const skippedAgents: Record<'archived' | 'paused' | 'budget', string> = { archived: '', paused: '', budget: '' };
let firstTick: TickStats;
let secondTick: TickStats;
let rowsAfterFirst: RunnerRow[];
let rowsAfterSecond: RunnerRow[];
let requestsAfterFirst: number;
let requestsAfterSecond: number;
let elapsedMs: number;

async function runnerRows(): Promise<RunnerRow[]> {
  return db.sql<RunnerRow[]>`
    SELECT app_id, table_name, record_id, user_id, op, client_id, schema_version, origin, space_id,
           data::text AS data, field_meta::text AS field_meta, actor::text AS actor
    FROM sync_changes WHERE client_id = 'mana-ai-runner' ORDER BY created_at, id`;
}

/** How Postgres renders `json` once stored as JSONB: the exact text every reader of the column gets. */
async function asStoredJsonb(json: string): Promise<string> {
  const [row] = await db.sql<{ text: string }[]>`SELECT ${json}::text::jsonb::text AS text`;
  return row!.text;
}

async function tick(): Promise<TickStats> {
  const response = await fetch(`${runner.baseUrl}/internal/tick`, { method: 'POST', headers: { 'x-service-key': SERVICE_KEY } });
  expect(response.status).toBe(200);
  return (await response.json()) as TickStats;
}

describe('the tick end to end', () => {
  beforeAll(async () => {
    const started = performance.now();
    [db, keys, llm] = await Promise.all([createTestDatabase(), generateTestKeyPair(), createFakeLlmServer()]);
    llm.script(
      {
        when: { hasToolResult: false, toolOffered: 'create_task' },
        reply: fakeReplies.toolCalls([{ name: 'create_task', arguments: TOOL_ARGS }], { usage: { prompt_tokens: 400, completion_tokens: 30 } }),
      },
      { when: { hasToolResult: true }, reply: fakeReplies.text(FINAL_TEXT, { usage: { prompt_tokens: 460, completion_tokens: 12 } }) },
    );

    webapp = createWebappClient(db.sql, { userId: USER });
    seeded = await seedMissionWithNote(webapp, {
      publicKeyPem: keys.publicKeyPem,
      masterKey: testMasterKey(),
      agent: { name: AGENT_NAME, role: 'Plant den Haushalt' },
      mission: { title: 'Wocheneinkauf', objective: OBJECTIVE, cadence: CADENCE, nextRunAt: DUE_AT },
      note: NOTE,
    });
    for (const kind of ['archived', 'paused', 'budget'] as const) {
      const agentId = await writeAgent(webapp, {
        name: `Agent ${kind}`,
        ...(kind === 'budget' ? { maxTokensPerDay: 1000 } : { state: kind }),
      });
      skippedAgents[kind] = agentId;
      await writeMission(webapp, { title: `Mission ${kind}`, objective: 'Plane etwas', cadence: CADENCE, nextRunAt: DUE_AT, agentId });
    }
    // Spend the runner recorded for the budget agent an hour ago (as its write-back does).
    await db.sql`
      INSERT INTO mana_ai.token_usage (user_id, agent_id, mission_id, tokens_used, ts)
      VALUES (${USER}, ${skippedAgents.budget}, 'earlier-mission', 1500, now() - interval '1 hour')`;

    // As in production: the runner's own role, no superuser, no BYPASSRLS (DESIGN §3.5).
    runner = await startBuiltRunner({
      DATABASE_URL: await runnerUrl(db),
      MANA_LLM_URL: llm.url,
      MANA_AI_PRIVATE_KEY_PEM: keys.privateKeyPem,
      MANA_SERVICE_KEY: SERVICE_KEY,
      TICK_ENABLED: 'false',
      MANA_AI_INSTANCE_ID: 'e2e-runner',
      LOG_LEVEL: 'warn',
    });

    firstTick = await tick();
    rowsAfterFirst = await runnerRows();
    requestsAfterFirst = llm.requests.length;
    secondTick = await tick();
    rowsAfterSecond = await runnerRows();
    requestsAfterSecond = llm.requests.length;
    elapsedMs = performance.now() - started;
  });

  afterAll(async () => {
    await runner?.stop();
    await llm?.close();
    await db?.drop();
  });

  it('plans the due mission and skips archived, paused and over-budget agents when ticked once', () => {
    expect(firstTick).toEqual({
      scannedAt: expect.any(String),
      dueMissionCount: 4,
      plansProduced: 1,
      plansWrittenBack: 1,
      parseFailures: 0,
      errors: [],
      skipped: { 'agent-archived': 1, 'agent-paused': 1, 'agent-budget': 1 },
    });
    // Runner startup, two ticks and seeding stay well inside the suite's budget.
    expect(elapsedMs).toBeLessThan(60_000);
  });

  it('writes one sync_changes row byte-compatible with the wire contract write-back row when a plan is produced', async () => {
    expect(rowsAfterFirst).toHaveLength(1);
    const row = rowsAfterFirst[0]!;
    expect({ ...row, data: undefined, field_meta: undefined, actor: undefined }).toEqual({
      app_id: 'ai',
      table_name: 'aiMissions',
      record_id: seeded.missionId,
      user_id: USER,
      op: 'update',
      client_id: 'mana-ai-runner',
      schema_version: 1,
      origin: 'agent',
      space_id: null,
      data: undefined,
      field_meta: undefined,
      actor: undefined,
    });

    const iterationId = await deriveIterationId(seeded.missionId, DUE_AT);
    const at = (JSON.parse(row.field_meta) as { iterations: string }).iterations;
    expect(at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const nextRunAt = new Date(Date.parse(at) + 60 * 60_000).toISOString();
    // The iteration's own stamps say when planning started and ended (database-calibrated), at or
    // before the write (its row's created_at); the field_meta stamp is the database's time, never
    // after the write (the write-back's fast path stamps with the claim's time plus the time elapsed
    // since, so it may be a few milliseconds before the iteration's finishedAt).
    const { startedAt, finishedAt } = (JSON.parse(row.data) as { iterations: Array<{ startedAt: string; finishedAt: string }> }).iterations[0]!;
    const [written] = await db.sql<{ ms: number }[]>`
      SELECT (extract(epoch FROM created_at) * 1000)::float8 AS ms FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    expect(Date.parse(startedAt)).toBeLessThanOrEqual(Date.parse(finishedAt));
    expect(Date.parse(finishedAt)).toBeLessThanOrEqual(written!.ms + 5);
    expect(Date.parse(at)).toBeLessThanOrEqual(written!.ms);
    // Appendix B's JSON, written out in its key order; the columns are JSONB, so readers get
    // Postgres's rendering of it, which must match the stored text byte for byte.
    const actorJson = `{"kind":"ai","principalId":${JSON.stringify(seeded.agentId)},"displayName":${JSON.stringify(AGENT_NAME)},"missionId":${JSON.stringify(seeded.missionId)},"iterationId":"${iterationId}","rationale":${JSON.stringify(OBJECTIVE)}}`;
    const stepJson = `{"id":"${iterationId}-0","summary":"create_task","intent":{"kind":"toolCall","toolName":"create_task","params":${JSON.stringify(TOOL_ARGS)}},"status":"planned"}`;
    const iterationJson = `{"id":"${iterationId}","startedAt":"${startedAt}","finishedAt":"${finishedAt}","plan":[${stepJson}],"summary":${JSON.stringify(FINAL_TEXT)},"overallStatus":"awaiting-review","source":"server"}`;
    const dataJson = `{"iterations":[${iterationJson}],"nextRunAt":"${nextRunAt}"}`;
    const fieldMetaJson = `{"iterations":"${at}","nextRunAt":"${at}"}`;
    expect(row.actor).toBe(await asStoredJsonb(actorJson));
    expect(row.data).toBe(await asStoredJsonb(dataJson));
    expect(row.field_meta).toBe(await asStoredJsonb(fieldMetaJson));
    // Every data key has its field_meta stamp (mana-sync drops unstamped keys on the wire).
    expect(Object.keys(JSON.parse(row.field_meta)).sort()).toEqual(Object.keys(JSON.parse(row.data)).sort());
  });

  it('advances nextRunAt by the interval cadence in the row and the operator view when the plan is written', async () => {
    const row = rowsAfterFirst[0]!;
    const data = JSON.parse(row.data) as { nextRunAt: string };
    const at = (JSON.parse(row.field_meta) as { nextRunAt: string }).nextRunAt;
    expect(Date.parse(data.nextRunAt) - Date.parse(at)).toBe(60 * 60_000);
    expect(Date.parse(data.nextRunAt)).toBeGreaterThan(Date.parse(DUE_AT));

    const response = await fetch(`${runner.baseUrl}/internal/missions/${USER}`, { headers: { 'x-service-key': SERVICE_KEY } });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { missions: { id: string; nextRunAt: string; lease: unknown; iterationCount: number; lastIteration: { id: string } | null }[] };
    const planned = body.missions.find((mission) => mission.id === seeded.missionId);
    expect(planned).toMatchObject({
      nextRunAt: data.nextRunAt,
      lease: null,
      iterationCount: 1,
      lastIteration: { id: await deriveIterationId(seeded.missionId, DUE_AT) },
    });
  });

  it('sends the decrypted note to the LLM and audits the decrypt with the iteration id when the grant is valid', async () => {
    expect(requestsAfterFirst).toBe(2);
    const first = llm.requests[0]!;
    const prompt = (first.body?.messages ?? []).map((message) => message.content ?? '').join('\n');
    expect(prompt).toContain(NOTE.content);
    expect(prompt).toContain(OBJECTIVE);
    expect(first.rawBody).not.toContain('enc:1:');
    expect(llm.requests[1]!.body?.messages?.some((message) => message.role === 'tool')).toBe(true);

    const audit = await db.sql`
      SELECT user_id, mission_id, iteration_id, table_name, record_id, status, reason FROM mana_ai.decrypt_audit ORDER BY id`;
    expect(audit).toEqual([
      {
        user_id: USER,
        mission_id: seeded.missionId,
        iteration_id: await deriveIterationId(seeded.missionId, DUE_AT),
        table_name: 'notes',
        record_id: seeded.noteId,
        status: 'ok',
        reason: null,
      },
    ]);
  });

  it('plans nothing and writes no row when ticked a second time', () => {
    expect(secondTick).toMatchObject({ plansProduced: 0, plansWrittenBack: 0, parseFailures: 0, errors: [] });
    // Only the gated missions are still due; the planned one waits for its next slot.
    expect(secondTick.dueMissionCount).toBe(3);
    expect(rowsAfterSecond).toEqual(rowsAfterFirst);
    expect(requestsAfterSecond).toBe(requestsAfterFirst);
  });

  it('records the token spend against the planning agent when the plan is written', async () => {
    const usage = await db.sql<{ agent_id: string; mission_id: string; tokens_used: number }[]>`
      SELECT agent_id, mission_id, tokens_used FROM mana_ai.token_usage WHERE agent_id = ${seeded.agentId}`;
    expect(usage).toEqual([{ agent_id: seeded.agentId, mission_id: seeded.missionId, tokens_used: TOKENS }]);
  });

  it('moves the counters on /metrics when two ticks ran', async () => {
    const metrics = await (await fetch(`${runner.baseUrl}/metrics`)).text();
    const value = (name: string, labels: Record<string, string> = {}) => metricValue(metrics, name, { service: 'mana-ai', ...labels });
    for (const [decision, reason] of [
      ['skipped-archived', 'agent-archived'],
      ['skipped-paused', 'agent-paused'],
      ['skipped-budget', 'agent-budget'],
    ] as const) {
      expect(value('mana_ai_agent_decisions_total', { decision }), decision).toBe(2);
      expect(value('mana_ai_missions_skipped_total', { reason }), reason).toBe(2);
    }
    expect(value('mana_ai_agent_decisions_total', { decision: 'ran' })).toBe(1);
    expect(value('mana_ai_plans_produced_total')).toBe(1);
    expect(value('mana_ai_plans_written_back_total')).toBe(1);
    expect(value('mana_ai_decrypts_total', { table: 'notes' })).toBeGreaterThanOrEqual(1);
    expect(value('mana_ai_planner_request_duration_seconds_count')).toBe(2);
    // Agent ids are the user's values: every agent but the default one is counted as `other`.
    expect(value('mana_ai_tokens_used_total', { agent_id: 'other' })).toBe(TOKENS);
    expect(value('mana_ai_ticks_total')).toBe(2);
    expect(value('mana_ai_parse_failures_total')).toBe(0);
    expect(value('mana_ai_mission_errors_total')).toBe(0);
  });

  it('answers 401 without the service key and lists every mission with its lease cleared with it', async () => {
    const anonymous = await fetch(`${runner.baseUrl}/internal/missions/${USER}`);
    expect(anonymous.status).toBe(401);

    const response = await fetch(`${runner.baseUrl}/internal/missions/${USER}`, { headers: { 'x-service-key': SERVICE_KEY } });
    const body = (await response.json()) as { userId: string; missions: { id: string; agentId: string; lease: unknown; hasGrant: boolean }[] };
    expect(body.userId).toBe(USER);
    expect(body.missions).toHaveLength(4);
    expect(body.missions.every((mission) => mission.lease === null)).toBe(true);
    expect(new Set(body.missions.map((mission) => mission.agentId))).toEqual(
      new Set([seeded.agentId, skippedAgents.archived, skippedAgents.paused, skippedAgents.budget]),
    );
    expect(body.missions.find((mission) => mission.id === seeded.missionId)?.hasGrant).toBe(true);
  });
});

const DEMO = fileURLToPath(new URL('../../apps/runner/dist/demo.js', import.meta.url));

/** Command lines of the processes still running whose arguments mention `text`. */
async function processesMentioning(text: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry))) {
    const commandLine = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (commandLine.includes(text)) found.push(commandLine.replaceAll('\0', ' '));
  }
  return found;
}

describe('pnpm demo', () => {
  it('plans the seeded mission, prints it and stops its PostgreSQL when run twice in a fresh directory', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'mana-ai-demo-'));
    // Running as root, PostgreSQL runs as the postgres user and must reach the data directory.
    await chmod(cwd, 0o755);
    try {
      for (const run of [1, 2]) {
        const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
          execFile(process.execPath, [DEMO], { cwd, timeout: 60_000 }, (error, stdout, stderr) =>
            resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
          );
        });
        expect(result.code, `run ${run}: ${result.stderr}`).toBe(0);
        expect(result.stdout).toContain('due 1 · planned 1 · written back 1 · parse failures 0');
        expect(result.stdout).toContain('decrypted note in the prompt: yes · ciphertext in any request: no');
        expect(result.stdout).toMatch(/step 0 {4}create_task \{"title":"[^"]+","priority":"high"\} · planned/);
        expect(result.stdout).toMatch(/notes\/[0-9a-f-]{36} {2}ok {2}iteration [0-9a-f-]{36}/);
        expect(await processesMentioning(cwd)).toEqual([]);
      }
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  }, 120_000);
});

import { randomUUID } from 'node:crypto';
import type { MissionCadence, TickStats } from '@mana-ai/core';
import { type FakeLlmServer, type FakeReply, createFakeLlmServer, fakeReplies } from '@mana-ai/planner/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type WebappClient, createWebappClient, writeAgent, writeMission } from '../../../apps/runner/src/demo/seed.js';
import { type BuiltRunner, metricValue, startBuiltRunner } from '../support/runner-process.js';
import { type TestDatabase, createTestDatabase, runnerUrl } from '../support/security-database.js';

const SERVICE_KEY = 'llm-output-service-key-0123456789';
const USER = `u-llm-output-${randomUUID()}`;
const CADENCE: MissionCadence = { kind: 'interval', everyMinutes: 60 };
const DUE_AT = new Date(Math.floor(Date.now() / 1000) * 1000 - 5 * 60_000).toISOString();
const FIFTY_MB = 50 * 1024 * 1024;
const NUL = '\u0000';
const LONE_HIGH = '\uD83D';
const LONE_LOW = '\uDE00';
const WRITE_FAIL_TOKENS = 430;
/** `MANA_LLM_MAX_RESPONSE_BYTES`' default: an answer cut there is charged at least a token per 4 of its bytes. */
const RESPONSE_CAP_BYTES = 1024 * 1024;

/** One mission per way an LLM answer can go wrong; the fake LLM tells them apart by objective. */
const SCENARIOS = {
  huge: 'Szenario riesige Antwort',
  flood: 'Szenario 500 Tool-Calls',
  dirty: 'Szenario NUL und Surrogate',
  truncated: 'Szenario abgeschnitten',
  legacy: 'Szenario altes Format ohne usage',
  writeFails: 'Szenario Schreibfehler',
} as const;
type Scenario = keyof typeof SCENARIOS;

interface RunnerRow {
  record_id: string;
  data: { iterations: { plan: { intent: { toolName: string; params: Record<string, unknown> } }[]; summary: string; overallStatus: string }[] };
}

let db: TestDatabase;
let llm: FakeLlmServer;
let runner: BuiltRunner;
let webapp: WebappClient;
const missionIds = {} as Record<Scenario, string>;
let firstTick: TickStats;
let secondTick: TickStats;
let rows: RunnerRow[];
let metrics: string;
let writeFailRequestsAfterFirst: number;
/** Tokens recorded per mission after the first pass (failed missions may run again in the second). */
const tokensAfterFirst = {} as Record<Scenario, number>;

function reply(scenario: Scenario, round: 'first' | 'follow-up', answer: FakeReply) {
  return { when: { lastUserMessage: SCENARIOS[scenario], hasToolResult: round === 'follow-up' }, reply: answer };
}

/** A chat completion written by hand, in shapes the fake's builders do not produce. */
function rawCompletion(message: Record<string, unknown>, finishReason: string): FakeReply {
  return fakeReplies.raw(JSON.stringify({ id: 'legacy', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', ...message }, finish_reason: finishReason }] }));
}

async function tick(): Promise<TickStats> {
  const response = await fetch(`${runner.baseUrl}/internal/tick`, { method: 'POST', headers: { 'x-service-key': SERVICE_KEY } });
  expect(response.status).toBe(200);
  return (await response.json()) as TickStats;
}

const requestsFor = (scenario: Scenario) =>
  llm.requests.filter((request) => (request.body?.messages ?? []).some((message) => message.role === 'user' && message.content?.includes(SCENARIOS[scenario])));
const rowOf = (scenario: Scenario) => rows.find((row) => row.record_id === missionIds[scenario]);

async function tokensRecorded(scenario: Scenario): Promise<number> {
  const [row] = await db.sql<{ n: string }[]>`SELECT coalesce(sum(tokens_used), 0)::text AS n FROM mana_ai.token_usage WHERE mission_id = ${missionIds[scenario]}`;
  return Number(row?.n ?? 0);
}

describe('LLM output against the real runner (DESIGN §6)', () => {
  beforeAll(async () => {
    [db, llm] = await Promise.all([createTestDatabase(), createFakeLlmServer()]);
    const calls = Array.from({ length: 500 }, (_, index) => ({ name: 'create_task', arguments: { title: `Aufgabe ${index}` } }));
    llm.script(
      reply('huge', 'first', fakeReplies.large(FIFTY_MB)),
      reply('flood', 'first', fakeReplies.toolCalls(calls, { content: 'Sehr viele Aufgaben.' })),
      reply('flood', 'follow-up', fakeReplies.text('Nie gefragt.')),
      reply('dirty', 'first', fakeReplies.toolCalls([{ name: 'create_task', arguments: { title: `Milch${NUL}kaufen ${LONE_HIGH}`, description: `${LONE_LOW}Notiz` } }])),
      reply('dirty', 'follow-up', fakeReplies.text(`Erledigt${NUL} ${LONE_HIGH}!`)),
      reply('truncated', 'first', fakeReplies.text('Ich plane jetzt die Wo', { finishReason: 'length', usage: { prompt_tokens: 300, completion_tokens: 4000 } })),
      reply('legacy', 'first', rawCompletion({ content: null, function_call: { name: 'create_task', arguments: '{"title":"Altes Format"}' } }, 'function_call')),
      reply('legacy', 'follow-up', rawCompletion({ content: [{ type: 'text', text: 'Teil eins, ' }, { type: 'text', text: 'Teil zwei.' }] }, 'stop')),
      reply('writeFails', 'first', fakeReplies.toolCalls([{ name: 'create_task', arguments: { title: 'Wird nie geschrieben' } }], { usage: { prompt_tokens: 400, completion_tokens: 30 } })),
      reply('writeFails', 'follow-up', fakeReplies.text('Fertig.', { usage: { prompt_tokens: 0, completion_tokens: 0 } })),
    );

    webapp = createWebappClient(db.sql, { userId: USER });
    const budgetAgents: Partial<Record<Scenario, string>> = {
      writeFails: await writeAgent(webapp, { name: 'Sparsam', maxTokensPerDay: 100 }),
      huge: await writeAgent(webapp, { name: 'Gross', maxTokensPerDay: 1000 }),
    };
    for (const scenario of Object.keys(SCENARIOS) as Scenario[]) {
      const agentId = budgetAgents[scenario];
      missionIds[scenario] = await writeMission(webapp, {
        title: `Mission ${scenario}`,
        objective: SCENARIOS[scenario],
        cadence: CADENCE,
        nextRunAt: DUE_AT,
        ...(agentId ? { agentId } : {}),
      });
    }
    // The database refuses this one mission's write-back (as it refused NULs before they were sanitised).
    await db.sql.unsafe(`
      CREATE FUNCTION public.refuse_write_back() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'write-back refused by the test'; END $$;
      CREATE TRIGGER refuse_write_back BEFORE INSERT ON sync_changes FOR EACH ROW
        WHEN (NEW.client_id = 'mana-ai-runner' AND NEW.record_id = '${missionIds.writeFails}')
        EXECUTE FUNCTION public.refuse_write_back();`);

    runner = await startBuiltRunner({
      DATABASE_URL: await runnerUrl(db),
      MANA_LLM_URL: llm.url,
      MANA_SERVICE_KEY: SERVICE_KEY,
      MANA_LLM_MAX_RETRIES: '0',
      TICK_ENABLED: 'false',
      // Failed missions come back after a second, so the second pass sees the budget gate.
      MANA_AI_RETRY_AFTER_MS: '1000',
      MANA_AI_INSTANCE_ID: 'llm-output-runner',
      LOG_LEVEL: 'warn',
    });

    firstTick = await tick();
    writeFailRequestsAfterFirst = requestsFor('writeFails').length;
    rows = await db.sql<RunnerRow[]>`
      SELECT record_id, data FROM sync_changes WHERE client_id = 'mana-ai-runner' AND table_name = 'aiMissions'`;
    metrics = await (await fetch(`${runner.baseUrl}/metrics`)).text();
    for (const scenario of Object.keys(SCENARIOS) as Scenario[]) tokensAfterFirst[scenario] = await tokensRecorded(scenario);
    // Wait (on the database's clock) until the failed missions' leases are handed back, then pass again.
    for (let tries = 0; tries < 100; tries++) {
      const [lease] = await db.sql<{ free: boolean }[]>`
        SELECT bool_and(coalesce(lease_until <= now(), true)) AS free FROM mana_ai.mission_snapshots
        WHERE mission_id IN ${db.sql([missionIds.writeFails, missionIds.huge])}`;
      if (lease?.free) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    secondTick = await tick();
  });

  afterAll(async () => {
    await runner?.stop();
    await llm?.close();
    await db?.drop();
  });

  it('writes the plans that may be written and fails the others with a reason when ticked once', () => {
    expect(firstTick).toMatchObject({ dueMissionCount: 6, plansWrittenBack: 3, parseFailures: 2 });
    expect(firstTick.errors).toEqual([expect.stringMatching(new RegExp(`^mission=${missionIds.writeFails}: .*write-back refused by the test`))]);
    expect(rows.map((row) => row.record_id).sort()).toEqual([missionIds.flood, missionIds.dirty, missionIds.legacy].sort());
  });

  it('stores nothing of a 50 MB answer and stops reading it at the cap', () => {
    expect(rowOf('huge')).toBeUndefined();
    const [request] = requestsFor('huge');
    expect(request!.bytesSent).toBeLessThan(FIFTY_MB / 2);
    expect(metricValue(metrics, 'mana_ai_provider_errors_total', { kind: 'too-large' })).toBe(1);
    expect(metricValue(metrics, 'mana_ai_llm_output_limited_total', { reason: 'response-too-large' })).toBe(1);
    expect(runner.output()).toContain('planner limited the LLM output');
  });

  it('charges a cut 50 MB answer an estimate of its bytes received, so the agent budget stops the next run', () => {
    expect(tokensAfterFirst.huge).toBeGreaterThan(RESPONSE_CAP_BYTES / 4);
    expect(requestsFor('huge')).toHaveLength(1);
  });

  it('writes the first 50 of 500 tool calls as the plan and asks the LLM nothing more', () => {
    const iteration = rowOf('flood')!.data.iterations.at(-1)!;
    expect(iteration.plan).toHaveLength(50);
    expect(iteration.plan.map((step) => step.intent.params.title)).toEqual(Array.from({ length: 50 }, (_, index) => `Aufgabe ${index}`));
    expect(iteration.summary).toBe('Sehr viele Aufgaben.');
    expect(requestsFor('flood')).toHaveLength(1);
    expect(metricValue(metrics, 'mana_ai_llm_output_limited_total', { reason: 'too-many-tool-calls' })).toBe(1);
  });

  it('writes NULs and lone surrogates of the LLM as U+FFFD instead of failing the write-back', () => {
    const iteration = rowOf('dirty')!.data.iterations.at(-1)!;
    expect(iteration.plan[0]!.intent.params).toEqual({ title: 'Milch\uFFFDkaufen \uFFFD', description: '\uFFFDNotiz' });
    expect(iteration.summary).toBe('Erledigt\uFFFD \uFFFD!');
  });

  it('never writes an answer cut off at the length limit as a plan, and charges its tokens', () => {
    expect(rowOf('truncated')).toBeUndefined();
    expect(tokensAfterFirst.truncated).toBe(4300);
    expect(metricValue(metrics, 'mana_ai_llm_output_limited_total', { reason: 'answer-truncated' })).toBe(1);
  });

  it('keeps a legacy function_call and content parts, and charges an estimate when no usage is reported', () => {
    const iteration = rowOf('legacy')!.data.iterations.at(-1)!;
    expect(iteration.plan.map((step) => [step.intent.toolName, step.intent.params])).toEqual([['create_task', { title: 'Altes Format' }]]);
    expect(iteration.summary).toBe('Teil eins, Teil zwei.');
    expect(tokensAfterFirst.legacy).toBeGreaterThan(0);
    expect(metricValue(metrics, 'mana_ai_llm_output_limited_total', { reason: 'usage-missing' })).toBe(2);
  });

  it('records the tokens of a failed write-back, so the agent budget stops the next run', () => {
    expect(rowOf('writeFails')).toBeUndefined();
    expect(tokensAfterFirst.writeFails).toBe(WRITE_FAIL_TOKENS);
    expect(secondTick.skipped).toMatchObject({ 'agent-budget': 2 });
    expect(requestsFor('writeFails')).toHaveLength(writeFailRequestsAfterFirst);
  });
});

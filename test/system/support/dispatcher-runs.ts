import { pathToFileURL } from 'node:url';
import { type FakeLlmRequest, type FakeLlmServer, type FakeReply, fakeReplies } from '@mana-ai/planner/testing';
import type { Sql } from 'postgres';
import { type RunnerProcess, spawnNode, waitForHealthy } from '../../../apps/runner/test/spawn-runner.js';
import { RUNNER_CLI, freePort } from './runner-process.js';

/** The preload that shifts a process's wall clock by `SKEW_CLOCK_OFFSET_MS` (see the file). */
export const SKEW_CLOCK_MODULE = pathToFileURL(new URL('./skew-clock.mjs', import.meta.url).pathname).href;

/** The tool every scripted plan calls (offered to every agent by default). */
export const PLANNED_TOOL = 'create_task';

/** Missions of the dispatcher suites are titled `Mission dsp-<kind>-<n>`: the label the fake LLM keys on. */
export const missionTitle = (label: string): string => `Mission ${label}`;

const LABEL = /\bMission (dsp-[a-z]+-\d+)\b/;

/** The label of the mission a planner request is for (from the prompt), or `unknown`. */
export function labelOf(request: FakeLlmRequest): string {
  for (const message of request.body?.messages ?? []) {
    const found = typeof message.content === 'string' ? LABEL.exec(message.content) : null;
    if (found) return found[1]!;
  }
  return 'unknown';
}

/** One request the fake LLM received, as the suites' assertions read it. */
export interface LlmCall {
  label: string;
  /** The `authorization` header: one `MANA_LLM_API_KEY` per runner instance. */
  caller: string;
  /** The test process's `Date.now()` when the request arrived. */
  atMs: number;
  /** `first`: the first round of a planning attempt; `follow-up`: a round after a tool result. */
  round: 'first' | 'follow-up';
  /** The whole prompt text (every message's content). */
  prompt: string;
}

/**
 * Scripts `llm` to record every request (with its arrival time) into the returned list and answer
 * what `decide` returns for it; `decide` defaults to {@link planReply}.
 */
export function recordLlmCalls(llm: FakeLlmServer, decide: (call: LlmCall, calls: readonly LlmCall[]) => FakeReply = planReply): LlmCall[] {
  const calls: LlmCall[] = [];
  llm.script({
    reply: (request) => {
      const call: LlmCall = {
        label: labelOf(request),
        caller: String(request.headers.authorization ?? ''),
        atMs: Date.now(),
        round: (request.body?.messages ?? []).some((message) => message.role === 'tool') ? 'follow-up' : 'first',
        prompt: (request.body?.messages ?? []).map((message) => message.content ?? '').join('\n'),
      };
      calls.push(call);
      return decide(call, calls);
    },
  });
  return calls;
}

/** A well-formed plan: one `create_task` call in the first round, a final text after it. */
export function planReply(call: LlmCall): FakeReply {
  return call.round === 'first'
    ? fakeReplies.toolCalls([{ name: PLANNED_TOOL, arguments: { title: `Task for ${call.label}` } }])
    : fakeReplies.text(`Plan for ${call.label} is ready.`);
}

/** The first request for `label` (optionally from `caller`), or undefined. */
export function firstCall(calls: readonly LlmCall[], label: string, caller?: string): LlmCall | undefined {
  return calls.find((call) => call.label === label && (caller === undefined || call.caller === caller));
}

/** The database's `clock_timestamp()` in epoch ms. */
export async function databaseNowMs(sql: Sql): Promise<number> {
  const [row] = await sql<{ ms: number }[]>`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms`;
  return row!.ms;
}

/**
 * The database's clock minus this process's `Date.now()`, in ms, from the sample with the shortest
 * round trip (error at most half of it). Zero when both run on one machine; measured anyway, so the
 * suites compare everything on the database's clock even against a remote `TEST_DATABASE_URL`.
 */
export async function databaseClockOffsetMs(sql: Sql, samples = 5): Promise<number> {
  let best = { roundTrip: Number.POSITIVE_INFINITY, offset: 0 };
  for (let i = 0; i < samples; i++) {
    const before = Date.now();
    const databaseMs = await databaseNowMs(sql);
    const after = Date.now();
    if (after - before < best.roundTrip) best = { roundTrip: after - before, offset: databaseMs - (before + after) / 2 };
  }
  return best.offset;
}

/** A line the runner logged with pino's ISO `time` (its own `Date.now()`), and when the test read it. */
export interface LoggedTime {
  loggedMs: number;
  arrivedMs: number;
}

/** A built runner process started by {@link startDispatcherRunner}. */
export interface DispatcherRunner {
  id: string;
  baseUrl: string;
  process: RunnerProcess;
  /** The `time` of every JSON log line on stdout, with its arrival time in this process. */
  logTimes: LoggedTime[];
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once exited. */
  stop(graceMs?: number): Promise<void>;
}

/** Options of {@link startDispatcherRunner}. */
export interface DispatcherRunnerOptions {
  /** `MANA_AI_INSTANCE_ID`; the LLM key is `key-<id>`, so the fake LLM tells instances apart. */
  id: string;
  databaseUrl: string;
  llmUrl: string;
  /** Shifts the process's wall clock (`Date`) by this much, through {@link SKEW_CLOCK_MODULE}. */
  skewMs?: number;
  /** More environment (`MANA_AI_CONCURRENCY`, `MANA_AI_LEASE_MS`, …). */
  env?: Record<string, string>;
}

/** The `authorization` header the fake LLM sees from instance `id`. */
export const callerOf = (id: string): string => `Bearer key-${id}`;

/** Starts `node [--import skew-clock] apps/runner/dist/cli.js start` and waits until `/health` answers. */
export async function startDispatcherRunner(options: DispatcherRunnerOptions): Promise<DispatcherRunner> {
  const port = await freePort();
  const nodeArgs = options.skewMs === undefined ? [RUNNER_CLI, 'start'] : ['--import', SKEW_CLOCK_MODULE, RUNNER_CLI, 'start'];
  const spawned = spawnNode(nodeArgs, {
    HOST: '127.0.0.1',
    PORT: String(port),
    DATABASE_URL: options.databaseUrl,
    MANA_LLM_URL: options.llmUrl,
    MANA_LLM_API_KEY: `key-${options.id}`,
    MANA_AI_INSTANCE_ID: options.id,
    LOG_LEVEL: 'info',
    ...(options.skewMs === undefined ? {} : { SKEW_CLOCK_OFFSET_MS: String(options.skewMs) }),
    ...options.env,
  });
  const logTimes: LoggedTime[] = [];
  spawned.child.stdout?.on('data', (chunk) => {
    const arrivedMs = Date.now();
    for (const match of String(chunk).matchAll(/"time":"([^"]+)"/g)) logTimes.push({ loggedMs: Date.parse(match[1]!), arrivedMs });
  });
  const runner: DispatcherRunner = {
    id: options.id,
    baseUrl: `http://127.0.0.1:${port}`,
    process: spawned,
    logTimes,
    async stop(graceMs = 5000) {
      const { child } = spawned;
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => spawned.kill(), graceMs);
      await spawned.exited;
      clearTimeout(timer);
    },
  };
  try {
    await waitForHealthy(`${runner.baseUrl}/health`, spawned, 60_000);
  } catch (error) {
    spawned.kill();
    throw error;
  }
  return runner;
}

/** The last `chars` of a runner's output, for failure messages. */
export function tailOf(runner: DispatcherRunner | undefined, chars = 4000): string {
  if (!runner) return '';
  return `--- ${runner.id} (exit ${runner.process.child.exitCode ?? runner.process.child.signalCode})\n${runner.process.stderr().slice(-chars)}\n${runner.process.stdout().slice(-chars)}`;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` every `everyMs` until it returns a value; throws `what` (and `diagnose()`) after `timeoutMs`. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>, diagnose?: () => string | Promise<string>, everyMs = 25): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${diagnose ? `\n${await diagnose()}` : ''}`);
    await sleep(everyMs);
  }
}

/**
 * Like {@link waitFor}, but a timeout is not thrown: it prints `what` and `diagnose()` and resolves
 * false, so a scenario goes on and its assertions say what went wrong.
 */
export async function settle(what: string, timeoutMs: number, probe: () => boolean | Promise<boolean>, diagnose?: () => string | Promise<string>, everyMs = 25): Promise<boolean> {
  try {
    await waitFor(what, timeoutMs, async () => ((await probe()) ? true : undefined), diagnose, everyMs);
    return true;
  } catch (error) {
    console.warn(String(error));
    return false;
  }
}

/** A runner row of the log, as the suites read it. */
export interface RunnerRow {
  record_id: string;
  iteration_id: string;
  created_at_ms: number;
  data: { iterations?: { id: string; startedAt: string; finishedAt: string }[]; nextRunAt?: string | null; [field: string]: unknown };
  field_meta: Record<string, string>;
}

/** Every row the runner wrote (`client_id = 'mana-ai-runner'`), oldest first. */
export async function runnerRows(sql: Sql): Promise<RunnerRow[]> {
  return sql<RunnerRow[]>`
    SELECT record_id, actor->>'iterationId' AS iteration_id, (extract(epoch FROM created_at) * 1000)::float8 AS created_at_ms,
           data, field_meta
    FROM sync_changes WHERE client_id = 'mana-ai-runner' ORDER BY created_at, id`;
}

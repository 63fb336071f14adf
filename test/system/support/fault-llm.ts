import { type FakeLlmRequest, type FakeLlmServer, type FakeReply, fakeReplies } from '@mana-ai/planner/testing';

/** The faults the scripted LLM serves. */
export type LlmFault = 'http-500' | 'hang' | 'malformed-json' | 'unknown-tool' | 'invalid-arguments';

/** Options of {@link scriptFaultyPlanner}. */
export interface FaultyPlannerOptions {
  /** Seed of the deterministic draw sequence. */
  seed: number;
  /** Share of requests that get a fault while the mission is under its fault budget (0..1). */
  faultRate: number;
  /** Planning attempts of one mission that may see faults; later attempts are always answered well. */
  faultyAttempts: number;
}

/** What the scripted LLM served, for assertions. */
export interface FaultLedger {
  faults: Record<LlmFault, number>;
  /** First-round requests (one per planning attempt) per mission id. */
  attempts: Map<string, number>;
  /** Requests per `authorization` header value (one key per runner instance). */
  byCaller: Map<string, number>;
}

/** The tool every well-formed answer calls (offered to every agent by default). */
export const PLANNED_TOOL = 'create_task';

/** Mulberry32: a tiny seeded PRNG, so a run's fault sequence is reproducible from its seed. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function missionIdOf(request: FakeLlmRequest): string {
  for (const message of request.body?.messages ?? []) {
    const found = typeof message.content === 'string' ? /\bMission (m-\d+)\b/.exec(message.content) : null;
    if (found) return found[1]!;
  }
  return 'unknown';
}

function lastToolResult(request: FakeLlmRequest): { success?: boolean } | undefined {
  const tool = (request.body?.messages ?? []).filter((message) => message.role === 'tool').at(-1);
  if (!tool || typeof tool.content !== 'string') return undefined;
  try {
    return JSON.parse(tool.content) as { success?: boolean };
  } catch {
    return {};
  }
}

/**
 * Scripts `llm` as a planner backend with faults: a first round answers one valid `create_task`
 * call, the round after a successful call a final text, the round after a rejected call a valid
 * call again. While a mission has had fewer than `faultyAttempts` planning attempts, a seeded draw
 * replaces a share of answers with an HTTP 500, a hang (the client's timeout), malformed JSON, a
 * call of a tool that does not exist, or a call with arguments that break the tool's schema.
 */
export function scriptFaultyPlanner(llm: FakeLlmServer, options: FaultyPlannerOptions): FaultLedger {
  const random = seededRandom(options.seed);
  const ledger: FaultLedger = {
    faults: { 'http-500': 0, hang: 0, 'malformed-json': 0, 'unknown-tool': 0, 'invalid-arguments': 0 },
    attempts: new Map(),
    byCaller: new Map(),
  };
  const fault = (kind: LlmFault, reply: FakeReply): FakeReply => {
    ledger.faults[kind]++;
    return reply;
  };
  llm.script({
    reply: (request) => {
      const caller = String(request.headers.authorization ?? '');
      ledger.byCaller.set(caller, (ledger.byCaller.get(caller) ?? 0) + 1);
      const missionId = missionIdOf(request);
      const previous = lastToolResult(request);
      if (previous === undefined) ledger.attempts.set(missionId, (ledger.attempts.get(missionId) ?? 0) + 1);
      const valid = fakeReplies.toolCalls([{ name: PLANNED_TOOL, arguments: { title: `Task for ${missionId}` } }]);
      const wellFormed = previous === undefined || previous.success !== true ? valid : fakeReplies.text(`Plan for ${missionId} is ready.`);
      if ((ledger.attempts.get(missionId) ?? 0) > options.faultyAttempts) return wellFormed;
      if (random() >= options.faultRate) return wellFormed;
      const draw = random();
      if (draw < 0.2) return fault('http-500', fakeReplies.error(500));
      if (draw < 0.35) return fault('hang', fakeReplies.hang());
      if (draw < 0.6) return fault('malformed-json', fakeReplies.malformedJson());
      if (draw < 0.8) return fault('unknown-tool', fakeReplies.toolCalls([{ name: 'drop_all_tables', arguments: { confirm: true } }]));
      return fault('invalid-arguments', fakeReplies.toolCalls([{ name: PLANNED_TOOL, arguments: { title: 42, priority: 'urgent' } }]));
    },
  });
  return ledger;
}

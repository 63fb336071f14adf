/**
 * The fake LLM of the system bench: the planner's OpenAI-compatible fake server, scripted as a
 * planner backend (a first round answers one `create_task` call, the round after the tool result a
 * final text), that timestamps every request on arrival and tells which mission it is for.
 */
import { type FakeLlmRequest, type FakeReply, createFakeLlmServer, fakeReplies } from '../packages/planner/src/testing/index.js';

/** One chat-completions request as the fake saw it. */
export interface LlmCall {
  /** The mission the prompt is about (`m-<n>`), `unknown` when none is named. */
  missionId: string;
  /** `performance.now()` when the request arrived (its body read). */
  at: number;
  /** True for the round after a tool result: the mission's plan is then complete on the LLM's side. */
  final: boolean;
  /** The `authorization` header: one key per runner instance. */
  caller: string;
}

/** Options of {@link createPlannerLlm}. */
export interface PlannerLlmOptions {
  /** Delay of every answer in ms (default 0: an instant LLM). */
  latencyMs?: number;
}

/** A running timed planner LLM. */
export interface PlannerLlm {
  readonly url: string;
  /** Requests so far. */
  readonly calls: number;
  /** Final-round requests so far (one per planned mission). */
  readonly plans: number;
  /** Arrival of each mission's first request. */
  readonly firstCallAt: ReadonlyMap<string, number>;
  /** Distinct callers (runner instances) seen so far. */
  readonly callers: ReadonlySet<string>;
  /** From now on, every request for `missionId` is held open and never answered. */
  hang(missionId: string): void;
  /** Calls `listener` synchronously on every request, after the counters are updated. */
  onCall(listener: (call: LlmCall) => void): void;
  /** Resolves when `predicate()` holds (checked after every request); rejects after `timeoutMs`. */
  until(predicate: () => boolean, timeoutMs: number, what: string): Promise<void>;
  close(): Promise<void>;
}

const MISSION_ID = /\bm-\d+\b/;

function missionIdOf(request: FakeLlmRequest): string {
  for (const message of request.body?.messages ?? []) {
    if (message.role !== 'user' || typeof message.content !== 'string') continue;
    const found = MISSION_ID.exec(message.content);
    if (found) return found[0];
  }
  return 'unknown';
}

/** Starts the fake on 127.0.0.1 (random port). */
export async function createPlannerLlm(options: PlannerLlmOptions = {}): Promise<PlannerLlm> {
  // The delay is added per reply (not as the server's latency) so requests are timed on arrival.
  const server = await createFakeLlmServer();
  const latencyMs = options.latencyMs ?? 0;
  const firstCallAt = new Map<string, number>();
  const callers = new Set<string>();
  const hanging = new Set<string>();
  const listeners: ((call: LlmCall) => void)[] = [];
  let calls = 0;
  let plans = 0;
  server.script({
    reply: (request): FakeReply => {
      const at = performance.now();
      const missionId = missionIdOf(request);
      const final = (request.body?.messages ?? []).some((message) => message.role === 'tool');
      const caller = String(request.headers.authorization ?? '');
      calls++;
      if (final) plans++;
      callers.add(caller);
      if (!firstCallAt.has(missionId)) firstCallAt.set(missionId, at);
      for (const listener of listeners) listener({ missionId, at, final, caller });
      if (hanging.has(missionId)) return fakeReplies.hang();
      const reply = final
        ? fakeReplies.text(`Plan for ${missionId} is ready.`)
        : fakeReplies.toolCalls([{ name: 'create_task', arguments: { title: `Task for ${missionId}` } }]);
      return latencyMs > 0 ? fakeReplies.delayed(latencyMs, reply) : reply;
    },
  });
  return {
    url: server.url,
    get calls() {
      return calls;
    },
    get plans() {
      return plans;
    },
    firstCallAt,
    callers,
    hang: (missionId) => void hanging.add(missionId),
    onCall: (listener) => void listeners.push(listener),
    until(predicate, timeoutMs, what) {
      if (predicate()) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          done = true;
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${calls} LLM calls, ${plans} plans)`));
        }, timeoutMs);
        let done = false;
        listeners.push(() => {
          if (done || !predicate()) return;
          done = true;
          clearTimeout(timer);
          resolve();
        });
      });
    },
    close: () => server.close(),
  };
}

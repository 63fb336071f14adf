import { makeAgentActor } from './actor.js';
import { isCiphertext } from './ciphertext.js';
import { type Clock, isoNow } from './clock.js';
import { DEFAULT_AGENT_ID, DEFAULT_AGENT_NAME, type IsoTimestamp, type SkipReason } from './domain.js';
import { describeError } from './errors.js';
import { buildServerIteration } from './iteration.js';
import type { Logger } from './logger.js';
import type { InputsPort, MissionClaim, MissionStorePort, PlannerPort, ResearchPort } from './ports.js';
import type { AgentDecision, EmitDispatcherEvent, MissionStage, RunIds, RunOutcome } from './run-events.js';

/** The explicit state of one mission run, from its claim to its end. */
export interface MissionRunState {
  readonly runId: string;
  readonly claim: MissionClaim;
  /** The pass (`runPass`) that claimed it, or null for the continuous dispatcher. */
  readonly passId: string | null;
  /** Local clock ms when the run started (for durations and local bounds only). */
  readonly startedAtMs: number;
  /** The stage the run is in (reported with an error). */
  stage: MissionStage;
  /** Set once the write-back started: the lease ends with it, whatever the heartbeat sees. */
  writing: boolean;
  /** How the run ended; unset while it runs. */
  outcome?: RunOutcome;
}

/** What one mission run needs. */
export interface MissionRunContext {
  store: MissionStorePort;
  inputs: InputsPort;
  planner: PlannerPort;
  research?: ResearchPort | undefined;
  /** The database-calibrated clock: the iteration's descriptive stamps come from it. */
  stampClock: Clock;
  logger: Logger;
  emit: EmitDispatcherEvent;
  /** Called when the write-back starts (the lease must no longer be renewed). */
  onWriteStart(state: MissionRunState): void;
}

/** Creates the state of a new run of `claim`. */
export function createMissionRunState(input: { runId: string; claim: MissionClaim; passId: string | null; startedAtMs: number }): MissionRunState {
  return { ...input, stage: 'gates', writing: false };
}

/** The ids every event of the run carries. */
export function runIds(state: MissionRunState): RunIds {
  const { mission, agent } = state.claim;
  return { runId: state.runId, missionId: mission.id, userId: mission.userId, agentId: agent?.id ?? null };
}

/** The gate that stops a run before any input is read, or undefined when it may run. */
async function gate(context: MissionRunContext, claim: MissionClaim): Promise<{ reason: SkipReason; decision?: AgentDecision } | { tokensUsed24h: number }> {
  const { mission, agent } = claim;
  let tokensUsed24h = 0;
  if (agent) {
    if (agent.state === 'archived') return { reason: 'agent-archived', decision: 'skipped-archived' };
    if (agent.state === 'paused') return { reason: 'agent-paused', decision: 'skipped-paused' };
    if (typeof agent.maxTokensPerDay === 'number' && agent.maxTokensPerDay >= 0) {
      tokensUsed24h = await context.store.tokensUsedLast24h(mission.userId, agent.id);
      if (tokensUsed24h >= agent.maxTokensPerDay) return { reason: 'agent-budget', decision: 'skipped-budget' };
    }
  }
  // Ciphertext must never reach the LLM: a mission whose own text is still encrypted is not planned.
  if (isCiphertext(mission.title) || isCiphertext(mission.objective)) return { reason: 'ciphertext-mission' };
  return { tokensUsed24h };
}

/**
 * `promise`, or a rejection with the abort reason as soon as `signal` aborts: a stage whose port is
 * slow to notice the abort cannot hold the run past its wall-time bound.
 */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * Runs one claimed mission to its end: gates (agent archived, paused, over budget; ciphertext
 * mission text) → research stage → input resolution → planner loop → write-back of the iteration
 * (built here, once) with the advanced `nextRunAt` and the token usage (recorded on its own when the
 * write-back fails, or when the plan failed). Never throws: every failure
 * becomes the run's outcome, so one mission never affects another. The lease is not touched here
 * except by the write-back; the dispatcher hands it back or holds it for a retry.
 */
export async function runMission(context: MissionRunContext, state: MissionRunState, signal: AbortSignal): Promise<RunOutcome> {
  const { claim } = state;
  const { mission, agent, iterationId } = claim;
  const ids = runIds(state);
  context.emit('mission.claimed', { ...ids, passId: state.passId });
  const end = (outcome: RunOutcome): RunOutcome => {
    state.outcome = outcome;
    return outcome;
  };
  try {
    const gated = await gate(context, claim);
    if ('reason' in gated) {
      context.emit('mission.skipped', { ...ids, reason: gated.reason });
      if (agent && gated.decision) context.emit('agent.decision', { agentId: agent.id, decision: gated.decision });
      return end({ kind: 'skipped', reason: gated.reason });
    }

    state.stage = 'research';
    signal.throwIfAborted();
    const research = context.research ? await untilAborted(context.research.prepare({ mission, iterationId }), signal) : { kind: 'none' as const };
    if (research.kind === 'pending') {
      context.emit('mission.skipped', { ...ids, reason: 'research-pending' });
      return end({ kind: 'skipped', reason: 'research-pending' });
    }

    state.stage = 'inputs';
    signal.throwIfAborted();
    const inputs = await untilAborted(context.inputs.resolve({ mission, agent, iterationId, signal }), signal);
    if (research.kind === 'ready') inputs.push(...research.inputs);

    state.stage = 'plan';
    signal.throwIfAborted();
    const startedAt: IsoTimestamp = isoNow(context.stampClock);
    const outcome = await context.planner.plan({ mission, agent, inputs, iterationId, runId: state.runId, tokensUsed24h: gated.tokensUsed24h, signal });
    const budgetAgentId = agent?.id ?? DEFAULT_AGENT_ID;
    const tokens = outcome.usage.totalTokens;
    /** Records the tokens of a run that writes no iteration: every LLM call counts against the budget. */
    const chargeWithoutWrite = async (): Promise<void> => {
      if (tokens <= 0) return;
      await context.store.recordTokenUsage(claim, budgetAgentId, tokens);
      context.emit('tokens.used', { agentId: budgetAgentId, userId: mission.userId, tokens });
    };
    if (!outcome.ok) {
      context.emit('mission.plan-failed', { ...ids, reason: outcome.reason, tokens });
      context.logger.warn({ ...ids, reason: outcome.reason }, 'planner loop failed');
      state.stage = 'write-back';
      await chargeWithoutWrite();
      return end({ kind: 'plan-failed', reason: outcome.reason });
    }
    context.emit('mission.planned', { ...ids, steps: outcome.calls.length, rounds: outcome.rounds, tokens });

    state.stage = 'write-back';
    signal.throwIfAborted();
    const iteration = buildServerIteration({
      iterationId,
      calls: outcome.calls,
      summary: outcome.summary,
      startedAt,
      finishedAt: isoNow(context.stampClock),
    });
    const actor = makeAgentActor({
      agentId: budgetAgentId,
      displayName: agent?.name ?? DEFAULT_AGENT_NAME,
      missionId: mission.id,
      iterationId,
      rationale: mission.objective,
    });
    state.writing = true;
    context.onWriteStart(state);
    let result: { written: boolean };
    try {
      result = await context.store.writeIteration(claim, { iteration, actor, tokensUsed: tokens });
    } catch (error) {
      // The usage rolled back with the write. Recorded on its own, a mission whose write-back keeps
      // failing still trips its agent's budget instead of calling the LLM on every retry for free.
      await chargeWithoutWrite().catch((chargeError: unknown) => {
        context.logger.error({ ...ids, err: describeError(chargeError) }, 'tokens of a failed write-back not recorded');
      });
      throw error;
    }
    if (tokens > 0) context.emit('tokens.used', { agentId: budgetAgentId, userId: mission.userId, tokens });
    context.emit('mission.written', { ...ids, iterationId, written: result.written });
    if (agent) context.emit('agent.decision', { agentId: agent.id, decision: 'ran' });
    if (research.kind === 'ready' && context.research) {
      // The plan is written: a failure to drop the research result must not turn it into an error.
      await context.research.consumed({ mission, iterationId }).catch((error: unknown) => {
        context.logger.warn({ ...ids, err: describeError(error) }, 'research result not marked consumed');
      });
    }
    context.logger.info({ ...ids, iterationId, steps: outcome.calls.length, written: result.written }, 'mission planned');
    return end({ kind: 'written', written: result.written });
  } catch (error) {
    const message = describeError(error);
    context.emit('mission.error', { ...ids, stage: state.stage, message });
    context.logger.error({ ...ids, stage: state.stage, err: message }, 'mission run failed');
    return end({ kind: 'error', stage: state.stage, message });
  }
}

import { type AiActor, makeAgentActor } from './actor.js';
import { type Clock, isoNow } from './clock.js';
import {
  type Agent,
  DEFAULT_AGENT_ID,
  DEFAULT_AGENT_NAME,
  type IsoTimestamp,
  type Mission,
  type MissionIteration,
  type ResolvedInput,
  type SkipReason,
  type TickStats,
  type TokenUsage,
} from './domain.js';
import { describeError } from './errors.js';
import type { EventBus } from './events.js';
import { type PlannedCall, buildServerIteration } from './iteration.js';
import { type Logger, noopLogger } from './logger.js';

/** A due mission claimed (leased) by this instance for one run. */
export interface MissionClaim {
  mission: Mission;
  /** The owning agent, or null for legacy missions and unknown/deleted agents. */
  agent: Agent | null;
  /** The `nextRunAt` this run is for. */
  dueSlot: IsoTimestamp;
  /** Derived from (mission id, due slot): a retried write of the same run is recognised. */
  iterationId: string;
}

/** What the snapshot refresh did. */
export interface RefreshSummary {
  rowsApplied: number;
  newSnapshots: number;
  updatedSnapshots: number;
  /** True when another instance held the refresh lock and this one skipped. */
  skipped?: boolean;
}

/** What the tick writes back for one planned mission (one transaction, lease released). */
export interface WriteBackRequest {
  iteration: MissionIteration;
  actor: AiActor;
  /** Tokens to add to the agent's rolling budget in the same transaction. */
  tokensUsed: number;
  now: IsoTimestamp;
}

/** The tick's view of the sync log and the runner's tables (implemented with @mana-ai/projection). */
export interface TickStorePort {
  /** Brings mission and agent snapshots up to date with the log. */
  refresh(): Promise<RefreshSummary>;
  /** Claims up to `limit` due missions (leases; per-agent in-flight limits honoured). */
  claimDue(request: { now: IsoTimestamp; limit: number }): Promise<MissionClaim[]>;
  /** Tokens the agent used in the last 24 hours. */
  tokensUsedLast24h(userId: string, agentId: string): Promise<number>;
  /** Writes the iteration and the advanced `nextRunAt`, records usage, releases the lease. */
  writeIteration(claim: MissionClaim, request: WriteBackRequest): Promise<{ written: boolean }>;
  /** Records token usage of a run that wrote nothing (failed loops count against the budget). */
  recordTokenUsage(claim: MissionClaim, agentId: string, tokensUsed: number): Promise<void>;
  /** Releases the lease of a run that wrote nothing; the mission stays due. */
  release(claim: MissionClaim): Promise<void>;
  /**
   * Extends the leases of missions still queued or running (the heartbeat; see
   * {@link TickOptions.renewEveryMs}) and returns those of `claims` whose lease this instance still
   * held. Optional: without it leases are never extended.
   */
  renew?(claims: readonly MissionClaim[]): Promise<readonly MissionClaim[]>;
}

/** Resolves a mission's linked inputs (grant unwrap, decrypt, audit) — @mana-ai/resolvers. */
export interface InputsPort {
  resolve(request: { mission: Mission; agent: Agent | null; iterationId: string }): Promise<ResolvedInput[]>;
}

/** Outcome of the research stage for one mission. */
export type ResearchOutcome =
  | { kind: 'none' }
  | { kind: 'pending' }
  | { kind: 'ready'; inputs: ResolvedInput[] };

/** The research stage before planning — @mana-ai/research. */
export interface ResearchPort {
  /** Runs before input resolution: a pending deep-research job skips the mission this tick. */
  prepare(request: { mission: Mission; iterationId: string }): Promise<ResearchOutcome>;
  /** Called after a plan that used the research result was written, so the result can be dropped. */
  consumed(request: { mission: Mission; iterationId: string }): Promise<void>;
}

/** What the planner produced for one mission. */
export type PlanOutcome =
  | { ok: true; calls: PlannedCall[]; summary: string; usage: TokenUsage; rounds: number }
  | { ok: false; reason: string; usage: TokenUsage };

/** The planner loop — @mana-ai/planner. */
export interface PlannerPort {
  plan(request: {
    mission: Mission;
    agent: Agent | null;
    inputs: ResolvedInput[];
    iterationId: string;
    tokensUsed24h: number;
    /** Aborts when the tick is abandoned (shutdown gave up waiting): stop calling the LLM. */
    signal?: AbortSignal;
  }): Promise<PlanOutcome>;
}

/** The agent decisions of UPSTREAM §5.3, as metric label values. */
export type AgentDecision = 'ran' | 'skipped-archived' | 'skipped-paused' | 'skipped-concurrency' | 'skipped-budget';

/** Events emitted by {@link runTick}; payloads carry ids and counts, never user text. */
export interface TickEvents {
  [name: string]: unknown;
  'tick.started': { scannedAt: IsoTimestamp };
  'tick.refreshed': RefreshSummary;
  'tick.finished': { stats: TickStats; durationMs: number };
  'tick.failed': { stage: 'refresh' | 'claim'; message: string };
  'mission.claimed': { missionId: string; userId: string; agentId: string | null };
  'mission.skipped': { missionId: string; userId: string; agentId: string | null; reason: SkipReason };
  'agent.decision': { agentId: string; decision: AgentDecision };
  'mission.planned': { missionId: string; userId: string; agentId: string | null; steps: number; rounds: number; tokens: number };
  'mission.plan-failed': { missionId: string; userId: string; agentId: string | null; reason: string; tokens: number };
  'mission.written': { missionId: string; userId: string; iterationId: string; written: boolean };
  'mission.error': { missionId: string; userId: string; stage: MissionStage; message: string };
  'tokens.used': { agentId: string; userId: string; tokens: number };
  /**
   * A lease heartbeat. `lost` counts missions still running whose lease ran out first (they may be
   * planned elsewhere too); missions that finished while the beat ran are neither held nor lost.
   */
  'leases.renewed': { requested: number; held: number; lost: number };
  'leases.renew-failed': { requested: number; message: string };
}

/** The step of a mission run in which an error happened. */
export type MissionStage = 'gates' | 'research' | 'inputs' | 'plan' | 'write-back';

/** Everything {@link runTick} needs. */
export interface TickPorts {
  store: TickStorePort;
  inputs: InputsPort;
  planner: PlannerPort;
  research?: ResearchPort;
  clock: Clock;
  logger?: Logger;
  events?: EventBus<TickEvents>;
}

/** Options of {@link runTick}. */
export interface TickOptions {
  /** Missions planned at once (default 8). */
  concurrency?: number;
  /** Missions claimed per round trip (default `2 × concurrency`). */
  claimBatchSize?: number;
  /** Upper bound of missions this instance handles in one tick (default 10,000). */
  maxMissionsPerTick?: number;
  /**
   * Abandons the tick: no further missions are claimed, every plan in flight is aborted (each plan
   * gets a signal of its own that follows this one), and the missions already claimed end as
   * errors with their leases handed back.
   */
  signal?: AbortSignal;
  /**
   * Lease heartbeat: every `renewEveryMs` the leases of claimed missions are extended through
   * `store.renew` while they are queued or running, and for missions that wrote nothing (skipped,
   * failed) until the tick hands them back. So a run longer than the lease is not claimed and
   * planned again elsewhere, a failed mission is not retried within its own tick, and the lease
   * itself can stay short (fast takeover after a crash). Off when unset or when the store has no
   * `renew`, and once `signal` aborts. A third of the lease is a good value.
   */
  renewEveryMs?: number;
  /**
   * A mission's lease is renewed for at most this long after its run started (after its claim while
   * it waits in the queue; default: no bound), so a run that hangs beyond any timeout still lets its
   * lease expire and another instance take over.
   */
  maxLeaseHoldMs?: number;
}

const CIPHERTEXT_PREFIX = 'enc:1:';

function isCiphertext(value: string): boolean {
  return value.startsWith(CIPHERTEXT_PREFIX);
}

/**
 * Runs one tick: refresh snapshots, claim due missions, and plan them in parallel up to
 * `concurrency`. Per mission: gates (agent archived, paused, over budget; ciphertext mission text),
 * research stage, input resolution, planner loop, write-back with the advanced `nextRunAt` and the
 * token usage, lease release. One failing mission never affects another; a refresh or claim failure
 * is reported in `errors` and ends the tick early.
 */
export async function runTick(ports: TickPorts, options: TickOptions = {}): Promise<TickStats> {
  const logger = ports.logger ?? noopLogger;
  const emit = <Name extends keyof TickEvents & string>(name: Name, payload: TickEvents[Name]): void =>
    ports.events?.emit(name, payload);
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 8));
  const batchSize = Math.max(1, Math.floor(options.claimBatchSize ?? concurrency * 2));
  const maxMissions = Math.max(0, Math.floor(options.maxMissionsPerTick ?? 10_000));
  const started = ports.clock.now();
  const scannedAt = isoNow(ports.clock);
  const stats: TickStats = {
    scannedAt,
    dueMissionCount: 0,
    plansProduced: 0,
    plansWrittenBack: 0,
    parseFailures: 0,
    errors: [],
    skipped: {},
  };
  emit('tick.started', { scannedAt });

  const finish = (): TickStats => {
    emit('tick.finished', { stats, durationMs: ports.clock.now() - started });
    return stats;
  };

  try {
    const refresh = await ports.store.refresh();
    emit('tick.refreshed', refresh);
    if (refresh.rowsApplied > 0) logger.info({ ...refresh }, 'snapshot refresh applied rows');
  } catch (error) {
    const message = describeError(error);
    stats.errors.push(`refresh: ${message}`);
    emit('tick.failed', { stage: 'refresh', message });
    logger.error({ err: message }, 'snapshot refresh failed');
    return finish();
  }

  const queue: MissionClaim[] = [];
  // Claims whose lease the heartbeat keeps alive, with the time their hold started (claim, then run
  // start): queued and running missions, and those that wrote nothing, until the tick hands them back.
  const live = new Map<MissionClaim, number>();
  let claimed = 0;
  let exhausted = false;
  let fetching: Promise<void> | undefined;
  const nextClaim = async (): Promise<MissionClaim | undefined> => {
    for (;;) {
      const claim = queue.shift();
      if (claim) return claim;
      if (exhausted || claimed >= maxMissions || options.signal?.aborted) return undefined;
      fetching ??= ports.store
        .claimDue({ now: scannedAt, limit: Math.min(batchSize, maxMissions - claimed) })
        .then(
          (batch) => {
            claimed += batch.length;
            stats.dueMissionCount += batch.length;
            if (batch.length === 0) exhausted = true;
            const claimedAt = ports.clock.now();
            for (const claim of batch) live.set(claim, claimedAt);
            queue.push(...batch);
          },
          (error: unknown) => {
            exhausted = true;
            const message = describeError(error);
            stats.errors.push(`claim: ${message}`);
            emit('tick.failed', { stage: 'claim', message });
            logger.error({ err: message }, 'claiming due missions failed');
          },
        )
        .finally(() => {
          fetching = undefined;
        });
      await fetching;
    }
  };

  // Leases of missions that wrote nothing are handed back when the tick ends, not at once: a mission
  // released mid-tick is still due and would be claimed again by this very tick.
  const unfinished: MissionClaim[] = [];
  const skip = async (claim: MissionClaim, reason: SkipReason, decision?: AgentDecision): Promise<void> => {
    stats.skipped[reason] = (stats.skipped[reason] ?? 0) + 1;
    const { mission, agent } = claim;
    emit('mission.skipped', { missionId: mission.id, userId: mission.userId, agentId: agent?.id ?? null, reason });
    if (agent && decision) emit('agent.decision', { agentId: agent.id, decision });
    unfinished.push(claim);
  };

  const runOne = async (claim: MissionClaim): Promise<void> => {
    const { mission, agent, iterationId } = claim;
    const ids = { missionId: mission.id, userId: mission.userId };
    const agentId = agent?.id ?? null;
    // The hold bound counts from the start of the run, not from the claim: queueing is not running.
    live.set(claim, ports.clock.now());
    emit('mission.claimed', { ...ids, agentId });
    let stage: MissionStage = 'gates';
    let wrote = false;
    try {
      let tokensUsed24h = 0;
      if (agent) {
        if (agent.state === 'archived') return await skip(claim, 'agent-archived', 'skipped-archived');
        if (agent.state === 'paused') return await skip(claim, 'agent-paused', 'skipped-paused');
        if (typeof agent.maxTokensPerDay === 'number' && agent.maxTokensPerDay >= 0) {
          tokensUsed24h = await ports.store.tokensUsedLast24h(mission.userId, agent.id);
          if (tokensUsed24h >= agent.maxTokensPerDay) return await skip(claim, 'agent-budget', 'skipped-budget');
        }
      }
      if (isCiphertext(mission.title) || isCiphertext(mission.objective)) {
        return await skip(claim, 'ciphertext-mission');
      }

      stage = 'research';
      const research = ports.research ? await ports.research.prepare({ mission, iterationId }) : { kind: 'none' as const };
      if (research.kind === 'pending') return await skip(claim, 'research-pending');

      stage = 'inputs';
      const inputs = await ports.inputs.resolve({ mission, agent, iterationId });
      if (research.kind === 'ready') inputs.push(...research.inputs);

      stage = 'plan';
      const startedAt = isoNow(ports.clock);
      options.signal?.throwIfAborted();
      const missionAbort = options.signal ? new AbortController() : undefined;
      if (missionAbort) planAborts.add(missionAbort);
      const outcome = await ports.planner
        .plan({
          mission,
          agent,
          inputs,
          iterationId,
          tokensUsed24h,
          ...(missionAbort ? { signal: missionAbort.signal } : {}),
        })
        .finally(() => missionAbort && planAborts.delete(missionAbort));
      const budgetAgentId = agent?.id ?? DEFAULT_AGENT_ID;
      if (!outcome.ok) {
        stats.parseFailures += 1;
        emit('mission.plan-failed', { ...ids, agentId, reason: outcome.reason, tokens: outcome.usage.totalTokens });
        logger.warn({ ...ids, reason: outcome.reason }, 'planner loop failed');
        if (outcome.usage.totalTokens > 0) {
          stage = 'write-back';
          await ports.store.recordTokenUsage(claim, budgetAgentId, outcome.usage.totalTokens);
          emit('tokens.used', { agentId: budgetAgentId, userId: mission.userId, tokens: outcome.usage.totalTokens });
        }
        unfinished.push(claim);
        return;
      }
      stats.plansProduced += 1;
      emit('mission.planned', {
        ...ids,
        agentId,
        steps: outcome.calls.length,
        rounds: outcome.rounds,
        tokens: outcome.usage.totalTokens,
      });

      stage = 'write-back';
      const now = isoNow(ports.clock);
      const iteration = buildServerIteration({ iterationId, calls: outcome.calls, summary: outcome.summary, startedAt, finishedAt: now });
      const actor = makeAgentActor({
        agentId: budgetAgentId,
        displayName: agent?.name ?? DEFAULT_AGENT_NAME,
        missionId: mission.id,
        iterationId,
        rationale: mission.objective,
      });
      // The write ends the lease: from here on a heartbeat that finds it gone must not call it lost.
      live.delete(claim);
      const result = await ports.store.writeIteration(claim, { iteration, actor, tokensUsed: outcome.usage.totalTokens, now });
      wrote = true;
      if (outcome.usage.totalTokens > 0) {
        emit('tokens.used', { agentId: budgetAgentId, userId: mission.userId, tokens: outcome.usage.totalTokens });
      }
      if (result.written) stats.plansWrittenBack += 1;
      emit('mission.written', { ...ids, iterationId, written: result.written });
      if (agent) emit('agent.decision', { agentId: agent.id, decision: 'ran' });
      if (research.kind === 'ready' && ports.research) await ports.research.consumed({ mission, iterationId });
      logger.info({ ...ids, agentId, iterationId, steps: outcome.calls.length, written: result.written }, 'mission planned');
    } catch (error) {
      const message = describeError(error);
      stats.errors.push(`mission=${mission.id}: ${message}`);
      emit('mission.error', { ...ids, stage, message });
      logger.error({ ...ids, stage, err: message }, 'mission run failed');
      if (!wrote) unfinished.push(claim);
    }
  };

  // Each plan gets its own signal, aborted with the tick's: the tick signal then carries one listener
  // instead of one per LLM call in flight (Node warns about a leak past 10 on one signal).
  const planAborts = new Set<AbortController>();
  const abortPlans = (): void => {
    for (const controller of planAborts) controller.abort(options.signal?.reason);
  };
  options.signal?.addEventListener('abort', abortPlans, { once: true });
  const worker = async (): Promise<void> => {
    for (let claim = await nextClaim(); claim; claim = await nextClaim()) await runOne(claim);
  };
  const heartbeat = startHeartbeat(ports, options, live, logger);
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    options.signal?.removeEventListener('abort', abortPlans);
    await heartbeat.stop();
  }
  await Promise.all(
    unfinished.map((claim) =>
      ports.store.release(claim).catch((error: unknown) => {
        logger.warn({ missionId: claim.mission.id, userId: claim.mission.userId, err: describeError(error) }, 'lease release failed; it will expire');
      }),
    ),
  );
  return finish();
}

/** Renews the leases in `live` on an interval; `stop()` ends it and waits for a renewal in flight. */
function startHeartbeat(
  ports: TickPorts,
  options: TickOptions,
  live: Map<MissionClaim, number>,
  logger: Logger,
): { stop(): Promise<void> } {
  const every = options.renewEveryMs;
  const renew = ports.store.renew?.bind(ports.store);
  if (!renew || every === undefined || !Number.isFinite(every) || every <= 0) return { stop: async () => {} };
  const maxHold = options.maxLeaseHoldMs ?? Number.POSITIVE_INFINITY;
  let inFlight: Promise<void> | undefined;
  const beat = async (): Promise<void> => {
    // An abandoned tick's leases are being handed back: renewing them now would only report them lost.
    if (options.signal?.aborted) return;
    const now = ports.clock.now();
    const claims = [...live].filter(([, claimedAt]) => now - claimedAt < maxHold).map(([claim]) => claim);
    if (claims.length === 0) return;
    try {
      const held = new Set(await renew(claims));
      // A mission written back while the beat ran has released its lease: finished, not lost.
      // Lost means no longer held by this instance: it expired and another claimer took it.
      const lost = claims.filter((claim) => !held.has(claim) && live.has(claim)).length;
      ports.events?.emit('leases.renewed', { requested: claims.length, held: held.size, lost });
      if (lost > 0) {
        logger.warn({ requested: claims.length, lost }, 'lease heartbeat: leases of running missions ran out; those missions may be planned elsewhere too');
      }
    } catch (error) {
      const message = describeError(error);
      ports.events?.emit('leases.renew-failed', { requested: claims.length, message });
      logger.warn({ requested: claims.length, err: message }, 'lease heartbeat failed; it is retried at the next beat');
    }
  };
  const timer = setInterval(() => {
    inFlight ??= beat().finally(() => {
      inFlight = undefined;
    });
  }, every);
  timer.unref?.();
  return {
    async stop() {
      clearInterval(timer);
      await inFlight;
    },
  };
}

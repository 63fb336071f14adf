import {
  type Agent,
  type Clock,
  type Dispatcher,
  type DispatcherEvents,
  type EventChannel,
  type InputsPort,
  type Logger,
  type MissionStorePort,
  type PlannerPort,
  type ResearchPort,
  createDispatcher,
} from '@mana-ai/core';
import type { Planner } from '@mana-ai/planner';
import { type MissionKey, type Projection, deriveIterationId } from '@mana-ai/projection';
import type { InputResolvers } from '@mana-ai/resolvers';
import type { RunnerConfig } from './config.js';

/** The package services the dispatcher is made of (each one a Fastify decorator in the app). */
export interface PipelineDeps {
  projection: Projection;
  resolvers: InputResolvers;
  planner: Planner;
  /** The research stage; omitted = no research before planning. */
  research?: ResearchPort | undefined;
  clock: Clock;
  logger: Logger;
  events: EventChannel<DispatcherEvents>;
}

/** The settings of the runner's config the dispatcher reads, passed as parsed. */
export type PipelineConfig = Pick<
  RunnerConfig,
  | 'concurrency'
  | 'tickIntervalMs'
  | 'probeIntervalMs'
  | 'retryAfterMs'
  | 'maxRunMs'
  | 'maxMissionsPerTick'
  | 'leaseMs'
  | 'llmTimeoutMs'
  | 'llmMaxRetries'
  | 'maxRounds'
>;

/** The planner's longest wait between two attempts of one LLM call (its `retryMaxDelayMs`). */
const LLM_RETRY_DELAY_BOUND_MS = 10_000;
/** Room for what is not an LLM call: research, input resolution and decryption, the write-back. */
const RUN_SLACK_MS = 5 * 60_000;

/**
 * How long after its run started a mission's lease may be kept alive by the heartbeat: the slowest
 * run the configuration allows (every planner round, plus the compaction call, timing out on every
 * attempt and waiting the longest backoff between attempts), five minutes for the other stages, and
 * one lease. Past it the run is considered hung and its lease left to expire.
 */
export function leaseHoldBoundMs(config: Pick<RunnerConfig, 'llmTimeoutMs' | 'llmMaxRetries' | 'maxRounds' | 'leaseMs'>): number {
  const llmCall = config.llmTimeoutMs * (config.llmMaxRetries + 1) + LLM_RETRY_DELAY_BOUND_MS * config.llmMaxRetries;
  return llmCall * (config.maxRounds + 1) + RUN_SLACK_MS + config.leaseMs;
}

const keyOf = (userId: string, missionId: string): string => JSON.stringify([userId, missionId]);

/**
 * The dispatcher's store over the projection: agents are looked up once per user and agent while a
 * lookup is cached (a failed one is not), iteration ids are derived from (mission, due slot), and
 * every time comparison happens on the database's clock inside the projection.
 */
export function createMissionStore(projection: Projection, owner: string): MissionStorePort {
  const agents = new Map<string, { agent: Promise<Agent | null>; at: number }>();
  const agentOf = (userId: string, agentId: string | undefined): Promise<Agent | null> => {
    if (!agentId) return Promise.resolve(null);
    const key = keyOf(userId, agentId);
    const now = performance.now();
    const cached = agents.get(key);
    // Short-lived: an agent paused or archived by its user must stop its missions within seconds.
    if (cached && now - cached.at < AGENT_CACHE_MS) return cached.agent;
    const agent = projection.loadAgent(userId, agentId);
    agents.set(key, { agent, at: now });
    agent.catch(() => agents.delete(key));
    if (agents.size > AGENT_CACHE_MAX) agents.delete(agents.keys().next().value as string);
    return agent;
  };
  const keys = (claims: readonly { mission: { userId: string; id: string } }[]): MissionKey[] =>
    claims.map(({ mission }) => ({ userId: mission.userId, missionId: mission.id }));
  return {
    async refresh() {
      const result = await projection.refresh();
      return {
        rowsApplied: result.rowsApplied,
        newSnapshots: result.newSnapshots,
        updatedSnapshots: result.updatedSnapshots,
        ...(result.skipped ? { skipped: true } : {}),
      };
    },
    async claimDue({ limit }) {
      const claimed = await projection.claimDue({ owner, limit });
      try {
        return await Promise.all(
          claimed.map(async ({ mission, dueSlot }) => {
            const [agent, iterationId] = await Promise.all([agentOf(mission.userId, mission.agentId), deriveIterationId(mission.id, dueSlot)]);
            return { mission, agent, dueSlot, iterationId };
          }),
        );
      } catch (error) {
        // The dispatcher never sees this batch: hand it all back rather than hold it until the leases expire.
        await projection.release(owner, keys(claimed)).catch(() => {});
        throw error;
      }
    },
    tokensUsedLast24h: (userId, agentId) => projection.tokenUsageLast24h(userId, agentId),
    async writeIteration(claim, request) {
      const result = await projection.writeIteration({
        userId: claim.mission.userId,
        missionId: claim.mission.id,
        dueSlot: claim.dueSlot,
        iteration: request.iteration,
        actor: request.actor,
        owner,
        tokenUsage: request.tokensUsed > 0 ? { agentId: request.actor.principalId, tokens: request.tokensUsed } : undefined,
      });
      return { written: !result.duplicate };
    },
    async recordTokenUsage(claim, agentId, tokensUsed) {
      await projection.recordTokenUsage({ userId: claim.mission.userId, agentId, missionId: claim.mission.id, tokens: tokensUsed });
    },
    async release(claim, options) {
      if (options?.retryAfterMs === undefined) await projection.release(owner, keys([claim]));
      // Held, not released: the lease now ends after the retry delay (database time).
      else await projection.renew({ owner, missions: keys([claim]), leaseMs: options.retryAfterMs });
    },
    async renew(claims) {
      const held = await projection.renew({ owner, missions: keys(claims) });
      const heldKeys = new Set(held.map((key) => keyOf(key.userId, key.missionId)));
      return claims.filter(({ mission }) => heldKeys.has(keyOf(mission.userId, mission.id)));
    },
    nextDueInMs: () => projection.nextDueInMs(),
    watch: (onSignal) => projection.watch(onSignal),
    hasPendingChanges: () => projection.hasPendingChanges(),
    databaseNow: () => projection.databaseNow(),
  };
}

/** How long a looked-up agent is reused. */
const AGENT_CACHE_MS = 2000;
/** Agents cached at most (oldest dropped first). */
const AGENT_CACHE_MAX = 10_000;

/** Input resolution over the resolvers: the mission's own grant, audit rows carry the iteration id. */
export function createInputsPort(resolvers: InputResolvers): InputsPort {
  return {
    resolve: ({ mission, iterationId }) =>
      resolvers.resolve({ userId: mission.userId, missionId: mission.id, iterationId, grant: mission.grant, inputs: mission.inputs }),
  };
}

/** The planner loop as core's planner port: a provider failure is a failed plan, not an exception. */
export function createPlannerPort(planner: Planner): PlannerPort {
  return {
    async plan({ mission, agent, inputs, tokensUsed24h, runId, signal }) {
      const result = await planner.planMission({
        mission,
        agent: agent ?? undefined,
        resolvedInputs: inputs,
        pretickUsage24h: tokensUsed24h,
        context: { runId, missionId: mission.id, ...(agent ? { agentId: agent.id } : {}) },
        ...(signal ? { signal } : {}),
      });
      if (result.stopReason === 'llm-error') {
        return { ok: false, reason: `llm-error: ${result.error?.kind ?? 'unknown'}`, usage: result.usage };
      }
      return {
        ok: true,
        calls: result.plan.steps.map((step) => ({ toolName: step.toolName, params: step.params, summary: step.summary })),
        summary: result.plan.summary,
        usage: result.usage,
        rounds: result.rounds,
      };
    },
  };
}

/**
 * The runner's dispatcher: core's dispatcher over the projection, resolvers, research stage and
 * planner, configured from the parsed config. The heartbeat beats three times per lease, so one slow
 * or failed renewal does not lose it.
 */
export function createPipelineDispatcher(deps: PipelineDeps, config: PipelineConfig, owner: string): Dispatcher {
  return createDispatcher(
    {
      store: createMissionStore(deps.projection, owner),
      inputs: createInputsPort(deps.resolvers),
      planner: createPlannerPort(deps.planner),
      research: deps.research,
      clock: deps.clock,
      logger: deps.logger,
      events: deps.events,
    },
    {
      concurrency: config.concurrency,
      maxSleepMs: config.tickIntervalMs,
      probeEveryMs: config.probeIntervalMs,
      retryAfterMs: config.retryAfterMs,
      maxRunMs: config.maxRunMs,
      maxMissionsPerPass: config.maxMissionsPerTick,
      renewEveryMs: Math.floor(config.leaseMs / 3),
      maxLeaseHoldMs: leaseHoldBoundMs(config),
    },
  );
}

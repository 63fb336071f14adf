import {
  type Agent,
  type Clock,
  type EventBus,
  type InputsPort,
  type Logger,
  type PlannerPort,
  type ResearchPort,
  type TickEvents,
  type TickPorts,
  type TickStorePort,
  runTick,
} from '@mana-ai/core';
import type { Planner } from '@mana-ai/planner';
import { type Projection, deriveIterationId } from '@mana-ai/projection';
import type { InputResolvers } from '@mana-ai/resolvers';
import type { TickFunction } from './scheduler.js';

/** The package services one tick is made of (each one a Fastify decorator in the app). */
export interface PipelineDeps {
  projection: Projection;
  resolvers: InputResolvers;
  planner: Planner;
  /** The research stage; omitted = no research before planning. */
  research?: ResearchPort | undefined;
  clock: Clock;
  logger: Logger;
  events: EventBus<TickEvents>;
}

/** Options of {@link createPipelineTick}. */
export interface PipelineOptions {
  /** Lease owner: unique per instance, stable across its ticks. */
  owner: string;
  /** Missions planned at once (`MANA_AI_CONCURRENCY`). */
  concurrency: number;
  /** Missions one instance handles per tick (`MANA_AI_MAX_MISSIONS_PER_TICK`). */
  maxMissionsPerTick?: number;
  /** Lease heartbeat interval (core's `renewEveryMs`); unset = leases are never extended. */
  renewEveryMs?: number;
  /** How long after its claim a mission's lease is still renewed (core's `maxLeaseHoldMs`). */
  maxLeaseHoldMs?: number;
}

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
export function leaseHoldBoundMs(config: { llmTimeoutMs: number; llmMaxRetries: number; maxRounds: number; leaseMs: number }): number {
  const llmCall = config.llmTimeoutMs * (config.llmMaxRetries + 1) + LLM_RETRY_DELAY_BOUND_MS * config.llmMaxRetries;
  return llmCall * (config.maxRounds + 1) + RUN_SLACK_MS + config.leaseMs;
}

/**
 * The tick store over the projection, for one tick: agents are looked up once per user and agent
 * in the tick (UPSTREAM §5.2 step 6), iteration ids are derived from (mission, due slot).
 */
export function createTickStore(projection: Projection, owner: string): TickStorePort {
  const agents = new Map<string, Promise<Agent | null>>();
  const agentOf = (userId: string, agentId: string | undefined): Promise<Agent | null> => {
    if (!agentId) return Promise.resolve(null);
    // JSON keys cannot collide the way a joined string could.
    const key = JSON.stringify([userId, agentId]);
    let agent = agents.get(key);
    if (!agent) {
      agent = projection.loadAgent(userId, agentId);
      agents.set(key, agent);
      // A failed lookup is not cached: the next mission of this agent tries again.
      agent.catch(() => agents.delete(key));
    }
    return agent;
  };
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
        // The tick never sees this batch: hand it all back rather than hold it until the leases expire.
        await projection.release(owner, claimed.map(({ mission }) => ({ userId: mission.userId, missionId: mission.id }))).catch(() => {});
        throw error;
      }
    },
    tokensUsedLast24h: (userId, agentId) => projection.tokenUsageLast24h(userId, agentId),
    async writeIteration(claim, request) {
      const result = await projection.writeIteration({
        userId: claim.mission.userId,
        missionId: claim.mission.id,
        dueSlot: claim.dueSlot,
        plan: {
          summary: request.iteration.summary ?? '',
          // runTick builds tool-call steps only; the projection rebuilds the same iteration from them.
          steps: request.iteration.plan.flatMap((step) =>
            step.intent.kind === 'toolCall' ? [{ toolName: step.intent.toolName, params: step.intent.params, summary: step.summary }] : [],
          ),
        },
        agent: claim.agent ? { id: claim.agent.id, name: claim.agent.name } : undefined,
        rationale: request.actor.rationale,
        owner,
        tokenUsage: request.tokensUsed > 0 ? { agentId: request.actor.principalId, tokens: request.tokensUsed } : undefined,
      });
      return { written: !result.duplicate };
    },
    async recordTokenUsage(claim, agentId, tokensUsed) {
      await projection.recordTokenUsage({ userId: claim.mission.userId, agentId, missionId: claim.mission.id, tokens: tokensUsed });
    },
    async release(claim) {
      await projection.release(owner, [{ userId: claim.mission.userId, missionId: claim.mission.id }]);
    },
    async renew(claims) {
      const keyOf = (userId: string, missionId: string): string => JSON.stringify([userId, missionId]);
      const held = await projection.renew({ owner, missions: claims.map(({ mission }) => ({ userId: mission.userId, missionId: mission.id })) });
      const heldKeys = new Set(held.map((key) => keyOf(key.userId, key.missionId)));
      return claims.filter(({ mission }) => heldKeys.has(keyOf(mission.userId, mission.id)));
    },
  };
}

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
    async plan({ mission, agent, inputs, tokensUsed24h, signal }) {
      const result = await planner.planMission({
        mission,
        agent: agent ?? undefined,
        resolvedInputs: inputs,
        pretickUsage24h: tokensUsed24h,
        context: { missionId: mission.id, ...(agent ? { agentId: agent.id } : {}) },
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
 * The runner's tick: core's `runTick` over the projection, resolvers, research stage and planner.
 * Each call builds fresh per-tick ports (agent cache) and runs one tick to the end.
 */
export function createPipelineTick(deps: PipelineDeps, options: PipelineOptions): TickFunction {
  const inputs = createInputsPort(deps.resolvers);
  const planner = createPlannerPort(deps.planner);
  // The scheduler aborts the signal when shutdown stops waiting for this tick.
  return async ({ signal }) => {
    const ports: TickPorts = {
      store: createTickStore(deps.projection, options.owner),
      inputs,
      planner,
      ...(deps.research ? { research: deps.research } : {}),
      clock: deps.clock,
      logger: deps.logger,
      events: deps.events,
    };
    return runTick(ports, {
      signal,
      concurrency: options.concurrency,
      ...(options.maxMissionsPerTick === undefined ? {} : { maxMissionsPerTick: options.maxMissionsPerTick }),
      ...(options.renewEveryMs === undefined ? {} : { renewEveryMs: options.renewEveryMs }),
      ...(options.maxLeaseHoldMs === undefined ? {} : { maxLeaseHoldMs: options.maxLeaseHoldMs }),
    });
  };
}

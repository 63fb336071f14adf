import { type Clock, type Dispatcher, type DispatcherEvents, type EventChannel, type Logger, type ResearchPort, createDispatcher } from '@mana-ai/core';
import { type Planner, createPlannerPort } from '@mana-ai/planner';
import { type Projection, createMissionStore } from '@mana-ai/projection';
import { type InputResolvers, createInputsPort } from '@mana-ai/resolvers';
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

/**
 * The runner's dispatcher: core's dispatcher over the projection, resolvers, research stage and
 * planner, configured from the parsed config. The heartbeat beats three times per lease, so one slow
 * or failed renewal does not lose it.
 */
export function createPipelineDispatcher(deps: PipelineDeps, config: PipelineConfig, owner: string): Dispatcher {
  return createDispatcher(
    {
      store: createMissionStore(deps.projection, { owner }),
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

import { type Dispatcher, type Logger, describeError } from '@mana-ai/core';
import type { Projection } from '@mana-ai/projection';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { observeEvents, sampleGauges } from '../event-metrics.js';
import { type PipelineConfig, createPipelineDispatcher } from '../pipeline.js';

/** Options of the pipeline plugin: the runner's parsed config as it is, and the lease owner. */
export interface PipelinePluginOptions {
  config: PipelineConfig;
  /** Lease owner name of this instance. */
  owner: string;
}

/** The wired mission pipeline of this instance. */
export interface PipelineDecorator {
  /** The dispatcher over the package plugins. */
  dispatcher: Dispatcher;
  /** The lease owner name of this instance. */
  owner: string;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The mission pipeline (see PipelineDecorator). */
    pipeline: PipelineDecorator;
  }
}

async function pipelinePlugin(app: FastifyInstance, options: PipelinePluginOptions): Promise<void> {
  const { manaCore, manaProjection: projection } = app;
  const logger = app.log.child({ component: 'dispatcher' });
  const dispatcher = createPipelineDispatcher(
    {
      projection,
      resolvers: app.manaResolvers,
      planner: app.manaPlanner,
      research: app.manaResearch.stage,
      clock: manaCore.clock,
      logger,
      events: manaCore.events,
    },
    options.config,
    options.owner,
  );
  const stopObserving = observeEvents(manaCore.events, app.metrics, manaCore.clock, { llmProvider: app.manaPlanner.adapter.provider });
  const stopSampling = sampleGauges({ projection, metrics: app.metrics, events: manaCore.events, clock: manaCore.clock, logger });
  const stopPruning = pruneTokenUsagePeriodically(projection, logger);
  app.decorate('pipeline', { dispatcher, owner: options.owner });
  // Runs after the dispatcher's preClose wait: leases of missions this instance did not finish are
  // handed back at once instead of blocking those missions until they expire.
  app.addHook('onClose', async () => {
    stopObserving();
    stopSampling();
    stopPruning();
    try {
      const released = await projection.release(options.owner);
      if (released > 0) logger.info({ released }, 'released leases on shutdown');
    } catch (error) {
      logger.warn({ err: describeError(error) }, 'could not release leases on shutdown; they expire');
    }
  });
}

/** How often an instance deletes one bounded batch of token usage rows past the retention. */
export const TOKEN_USAGE_PRUNE_EVERY_MS = 60_000;

/**
 * Keeps the token ledger to what the 24 h budget reads: every `everyMs` (default {@link TOKEN_USAGE_PRUNE_EVERY_MS}) one
 * batch (at most `TOKEN_USAGE_PRUNE_BATCH` rows older than `TOKEN_USAGE_RETENTION_MS`, database time)
 * is deleted. A failure is logged and retried on the next beat. Returns the stop function.
 */
export function pruneTokenUsagePeriodically(
  projection: Pick<Projection, 'pruneTokenUsage'>,
  logger: Logger,
  everyMs: number = TOKEN_USAGE_PRUNE_EVERY_MS,
): () => void {
  const timer = setInterval(() => {
    projection.pruneTokenUsage().then(
      (deleted) => {
        if (deleted > 0) logger.info({ deleted }, 'pruned token usage rows past the retention');
      },
      (error: unknown) => logger.warn({ err: describeError(error) }, 'could not prune token usage; retrying later'),
    );
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * Decorates `pipeline`: the dispatcher over the package plugins (`manaProjection`, `manaResolvers`,
 * `manaPlanner`, `manaResearch`), with their events feeding the metrics.
 */
export default fp(pipelinePlugin, {
  name: 'mana-ai-pipeline',
  fastify: '5.x',
  dependencies: ['mana-ai-metrics', '@mana-ai/core', '@mana-ai/projection', '@mana-ai/resolvers', '@mana-ai/planner', '@mana-ai/research'],
  decorators: { fastify: ['metrics', 'manaCore', 'manaProjection', 'manaResolvers', 'manaPlanner', 'manaResearch'] },
});

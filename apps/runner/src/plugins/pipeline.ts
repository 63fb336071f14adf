import { type EventBus, type TickEvents, describeError } from '@mana-ai/core';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { observeEvents, runnerEvents } from '../event-metrics.js';
import { createPipelineTick } from '../pipeline.js';
import type { TickFunction } from '../scheduler.js';

/** Options of the pipeline plugin. */
export interface PipelinePluginOptions {
  /** Lease owner name of this instance. */
  owner: string;
  /** Missions planned at once. */
  concurrency: number;
  /** Missions one instance handles per tick. */
  maxMissionsPerTick?: number;
  /** Lease heartbeat interval in ms; unset = leases are never extended. */
  renewEveryMs?: number;
  /** How long after its claim a mission's lease is still renewed. */
  maxLeaseHoldMs?: number;
}

/** The wired mission pipeline of this instance. */
export interface PipelineDecorator {
  /** One tick: refresh, claim, plan in parallel, write back. */
  tick: TickFunction;
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
  const logger = app.log.child({ component: 'tick' });
  const tick = createPipelineTick(
    {
      projection,
      resolvers: app.manaResolvers,
      planner: app.manaPlanner,
      research: app.manaResearch.stage,
      clock: manaCore.clock,
      logger,
      // Core's bus carries every package's events; runTick emits its own slice of names on it.
      events: manaCore.events as unknown as EventBus<TickEvents>,
    },
    {
      owner: options.owner,
      concurrency: options.concurrency,
      ...(options.maxMissionsPerTick === undefined ? {} : { maxMissionsPerTick: options.maxMissionsPerTick }),
      ...(options.renewEveryMs === undefined ? {} : { renewEveryMs: options.renewEveryMs }),
      ...(options.maxLeaseHoldMs === undefined ? {} : { maxLeaseHoldMs: options.maxLeaseHoldMs }),
    },
  );
  const stopObserving = observeEvents(manaCore.events, app.metrics, manaCore.clock);
  // Sampled after each tick rather than on scrape: /metrics must not depend on the database.
  let feedLagUnavailable = false;
  const stopSampling = runnerEvents(manaCore.events).on('tick.finished', () => {
    projection.leaseStats().then(
      (stats) => app.metrics.expiredLeases.set(stats.expired),
      (error: unknown) => logger.warn({ err: describeError(error) }, 'lease stats unavailable'),
    );
    projection.feedLag().then(
      (seconds) => {
        app.metrics.feedLag.set(seconds);
        feedLagUnavailable = false;
      },
      (error: unknown) => {
        // NaN, not the last value: a stale lag must not keep ManaAIRefreshHeldBack firing.
        app.metrics.feedLag.set(Number.NaN);
        // Logged once per outage (a database without migration projection/0004 fails every tick).
        if (!feedLagUnavailable) logger.warn({ err: describeError(error) }, 'feed lag unavailable');
        feedLagUnavailable = true;
      },
    );
  });
  app.decorate('pipeline', { tick, owner: options.owner });
  // Runs after the scheduler's preClose wait: leases of missions this instance did not finish are
  // handed back at once instead of blocking those missions until they expire.
  app.addHook('onClose', async () => {
    stopObserving();
    stopSampling();
    try {
      const released = await projection.release(options.owner);
      if (released > 0) logger.info({ released }, 'released leases on shutdown');
    } catch (error) {
      logger.warn({ err: describeError(error) }, 'could not release leases on shutdown; they expire');
    }
  });
}

/**
 * Decorates `pipeline`: the tick over the package plugins (`manaProjection`, `manaResolvers`,
 * `manaPlanner`, `manaResearch`), with their events feeding the metrics.
 */
export default fp(pipelinePlugin, {
  name: 'mana-ai-pipeline',
  fastify: '5.x',
  dependencies: ['mana-ai-metrics', '@mana-ai/core', '@mana-ai/projection', '@mana-ai/resolvers', '@mana-ai/planner', '@mana-ai/research'],
  decorators: { fastify: ['metrics', 'manaCore', 'manaProjection', 'manaResolvers', 'manaPlanner', 'manaResearch'] },
});

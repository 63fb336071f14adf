import { type Dispatcher, describeError } from '@mana-ai/core';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { observeEvents } from '../event-metrics.js';
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

/** Lease and feed-lag gauges are sampled at most this often (after dispatcher cycles, never on scrape). */
const GAUGE_SAMPLE_MS = 15_000;

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
  const stopObserving = observeEvents(manaCore.events, app.metrics, manaCore.clock);
  // Sampled after cycles and passes rather than on scrape: /metrics must not depend on the database.
  let feedLagUnavailable = false;
  let lastSample = Number.NEGATIVE_INFINITY;
  const sample = (force: boolean): void => {
    const now = manaCore.clock.now();
    if (!force && now - lastSample < GAUGE_SAMPLE_MS) return;
    lastSample = now;
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
        // Logged once per outage (a database without migration projection/0004 fails every time).
        if (!feedLagUnavailable) logger.warn({ err: describeError(error) }, 'feed lag unavailable');
        feedLagUnavailable = true;
      },
    );
  };
  const { events } = manaCore;
  const stopSampling = [events.on('dispatcher.cycle', () => sample(false)), events.on('tick.finished', () => sample(true))];
  app.decorate('pipeline', { dispatcher, owner: options.owner });
  // Runs after the dispatcher's preClose wait: leases of missions this instance did not finish are
  // handed back at once instead of blocking those missions until they expire.
  app.addHook('onClose', async () => {
    stopObserving();
    for (const stop of stopSampling) stop();
    try {
      const released = await projection.release(options.owner);
      if (released > 0) logger.info({ released }, 'released leases on shutdown');
    } catch (error) {
      logger.warn({ err: describeError(error) }, 'could not release leases on shutdown; they expire');
    }
  });
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

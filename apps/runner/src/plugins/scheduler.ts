import type { Clock } from '@mana-ai/core';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { type Scheduler, type SchedulerOptions, type TickFunction, createScheduler } from '../scheduler.js';

/** Options of the scheduler plugin. */
export interface SchedulerPluginOptions extends SchedulerOptions {
  tick: TickFunction;
  clock: Clock;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The tick scheduler of this instance. */
    scheduler: Scheduler;
  }
}

async function schedulerPlugin(app: FastifyInstance, options: SchedulerPluginOptions): Promise<void> {
  const { tick, clock, ...schedulerOptions } = options;
  const scheduler = createScheduler(
    {
      tick,
      clock,
      logger: app.log.child({ component: 'scheduler' }),
      hooks: {
        tickStarted: () => app.metrics.ticks.inc(),
        tickFinished: (seconds) => app.metrics.tickDuration.observe(seconds),
      },
    },
    schedulerOptions,
  );
  app.decorate('scheduler', scheduler);
  app.addHook('onReady', async () => scheduler.start());
  // preClose runs before the server waits for in-flight requests, so a POST /internal/tick in
  // flight gets its bounded chance to finish and answer.
  app.addHook('preClose', async () => {
    await scheduler.stop();
  });
}

/** Decorates `scheduler`: started when the app is ready, stopped (bounded wait) when it closes. */
export default fp(schedulerPlugin, {
  name: 'mana-ai-scheduler',
  fastify: '5.x',
  dependencies: ['mana-ai-metrics'],
  decorators: { fastify: ['metrics'] },
});

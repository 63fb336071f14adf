import type { Dispatcher } from '@mana-ai/core';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';

/** Options of the dispatcher plugin. */
export interface DispatcherPluginOptions {
  /** The dispatcher to run (the wired pipeline's, or a stand-in in tests of the host). */
  dispatcher: Dispatcher;
  /** `TICK_ENABLED`: dispatch continuously once the app is ready. */
  enabled: boolean;
  /** `MANA_AI_SHUTDOWN_TIMEOUT_MS`: how long closing waits for the runs in flight. */
  shutdownTimeoutMs: number;
}

/** The dispatcher of this instance and whether it dispatches continuously. */
export interface DispatcherDecorator {
  /** Whether continuous dispatching is enabled by configuration. */
  readonly enabled: boolean;
  /** True while the dispatcher runs continuously (`running` in /health). */
  readonly running: boolean;
  /** The dispatcher itself: `runPass()` serves POST /internal/tick. */
  readonly dispatcher: Dispatcher;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The mission dispatcher of this instance. */
    dispatcher: DispatcherDecorator;
  }
}

async function dispatcherPlugin(app: FastifyInstance, options: DispatcherPluginOptions): Promise<void> {
  const { dispatcher, enabled, shutdownTimeoutMs } = options;
  const logger = app.log.child({ component: 'dispatcher' });
  app.decorate('dispatcher', {
    enabled,
    get running() {
      return dispatcher.started;
    },
    dispatcher,
  });
  app.addHook('onReady', async () => {
    if (enabled) await dispatcher.start();
  });
  // preClose runs before the server waits for in-flight requests, so a POST /internal/tick in
  // flight gets its bounded chance to finish and answer.
  app.addHook('preClose', async () => {
    if (dispatcher.inFlight > 0 || dispatcher.passing) {
      logger.info({ inFlight: dispatcher.inFlight, pass: dispatcher.passing, timeoutMs: shutdownTimeoutMs }, 'waiting for the in-flight pass and mission runs');
    }
    const finished = await dispatcher.stop({ timeoutMs: shutdownTimeoutMs });
    if (!finished) logger.warn({ timeoutMs: shutdownTimeoutMs }, 'mission runs still in flight at shutdown were aborted');
  });
}

/** Decorates `dispatcher`: started when the app is ready (if enabled), stopped (bounded wait) when it closes. */
export default fp(dispatcherPlugin, {
  name: 'mana-ai-dispatcher',
  fastify: '5.x',
});

import type { Clock } from '@mana-ai/core';
import { manaCore } from '@mana-ai/core/fastify';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Sql } from 'postgres';
import type { RunnerConfig } from './config.js';
import errorHandler from './plugins/error-handler.js';
import metrics from './plugins/metrics.js';
import scheduler from './plugins/scheduler.js';
import serviceAuth from './plugins/service-auth.js';
import healthRoute from './routes/health.js';
import internalTickRoute from './routes/internal-tick.js';
import metricsRoute from './routes/metrics.js';
import type { TickFunction } from './scheduler.js';
import { RUNNER_VERSION } from './version.js';

/** Collaborators of {@link buildApp}. */
export interface AppDeps {
  /** The one postgres.js pool of the process. */
  sql: Sql;
  /** A pino logger (or anything Fastify accepts as `loggerInstance`). */
  logger: FastifyBaseLogger;
  clock: Clock;
  /** One tick of the pipeline. Planning is not wired yet: server.ts passes a placeholder. */
  tick: TickFunction;
  /** Reported by /health (default: the runner's package.json version). */
  version?: string;
}

/** The part of {@link RunnerConfig} the app reads. */
export type AppConfig = Pick<RunnerConfig, 'serviceKey' | 'tickIntervalMs' | 'tickEnabled' | 'shutdownTimeoutMs'> & {
  /** Bound of the /health database check (default 1000 ms). */
  healthDatabaseTimeoutMs?: number;
};

/**
 * Builds the runner's Fastify app without listening: metrics, service auth on `/internal/*`, the
 * tick scheduler (started on ready, stopped on close), one error handler, and the routes.
 */
export function buildApp(deps: AppDeps, config: AppConfig): FastifyInstance {
  const app = Fastify({ loggerInstance: deps.logger });
  app.register(manaCore, { clock: deps.clock });
  app.register(metrics);
  app.register(errorHandler);
  app.register(serviceAuth, { serviceKey: config.serviceKey });
  app.register(scheduler, {
    tick: deps.tick,
    clock: deps.clock,
    intervalMs: config.tickIntervalMs,
    enabled: config.tickEnabled,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
  });
  app.register(healthRoute, {
    sql: deps.sql,
    version: deps.version ?? RUNNER_VERSION,
    ...(config.healthDatabaseTimeoutMs === undefined ? {} : { databaseTimeoutMs: config.healthDatabaseTimeoutMs }),
  });
  app.register(metricsRoute);
  app.register(internalTickRoute);
  return app;
}

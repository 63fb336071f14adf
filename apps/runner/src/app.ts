import type { Clock } from '@mana-ai/core';
import { manaCore } from '@mana-ai/core/fastify';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Sql } from 'postgres';
import { type RunnerConfig, jwksUrlOf } from './config.js';
import errorHandler from './plugins/error-handler.js';
import metrics from './plugins/metrics.js';
import scheduler from './plugins/scheduler.js';
import serviceAuth from './plugins/service-auth.js';
import aiAuditRoute from './routes/ai-audit.js';
import healthRoute from './routes/health.js';
import internalTickRoute from './routes/internal-tick.js';
import metricsRoute from './routes/metrics.js';
import type { TickFunction } from './scheduler.js';
import { RUNNER_VERSION } from './version.js';

const DEFAULT_AUTH_URL = 'http://localhost:3001';
const DEFAULT_JWT_AUDIENCE = 'mana';
const DEFAULT_DEV_USER_ID = '00000000-0000-0000-0000-000000000000';

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
export type AppConfig = Pick<RunnerConfig, 'serviceKey' | 'tickIntervalMs' | 'tickEnabled' | 'shutdownTimeoutMs'> &
  Partial<
    Pick<
      RunnerConfig,
      'nodeEnv' | 'authUrl' | 'authJwksUrl' | 'jwtIssuer' | 'jwtAudience' | 'devBypassAuth' | 'devUserId' | 'corsOrigins'
    >
  > & {
  /** Bound of the /health database check (default 1000 ms). */
  healthDatabaseTimeoutMs?: number;
};

/**
 * Builds the runner's Fastify app without listening: metrics, service auth on `/internal/*`, the
 * tick scheduler (started on ready, stopped on close), one error handler, and the routes
 * (including the JWT-authenticated, CORS-enabled `GET /api/v1/me/ai-audit`).
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
  const authUrl = config.authUrl ?? DEFAULT_AUTH_URL;
  app.register(aiAuditRoute, {
    sql: deps.sql,
    clock: deps.clock,
    jwksUrl: jwksUrlOf({ authUrl, authJwksUrl: config.authJwksUrl }),
    issuers: [...new Set([config.jwtIssuer, authUrl].filter((issuer): issuer is string => issuer !== undefined))],
    audience: config.jwtAudience ?? DEFAULT_JWT_AUDIENCE,
    corsOrigins: config.corsOrigins ?? [],
    // The bypass is honoured in development only, whatever DEV_BYPASS_AUTH says elsewhere.
    bypassUserId: config.nodeEnv === 'development' && config.devBypassAuth === true ? (config.devUserId ?? DEFAULT_DEV_USER_ID) : undefined,
  });
  return app;
}

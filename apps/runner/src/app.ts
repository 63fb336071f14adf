import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { type Clock, type Dispatcher, type EventBus, type ManaAiEvents, createEventBus } from '@mana-ai/core';
import { manaCore } from '@mana-ai/core/fastify';
import { manaCrypto } from '@mana-ai/crypto/fastify';
import type { LlmTransport } from '@mana-ai/planner';
import { manaPlanner } from '@mana-ai/planner/fastify';
import { manaProjection } from '@mana-ai/projection/fastify';
import type { ShallowResearchAuth } from '@mana-ai/research';
import { manaResearch } from '@mana-ai/research/fastify';
import { manaResolvers } from '@mana-ai/resolvers/fastify';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Sql } from 'postgres';
import { createApiJwtSigner } from './api-jwt.js';
import { type RunnerConfig, jwksUrlOf, parseConfig } from './config.js';
import { ConfigError } from './errors.js';
import connections from './plugins/connections.js';
import errorHandler from './plugins/error-handler.js';
import metrics from './plugins/metrics.js';
import dispatcherPlugin from './plugins/dispatcher.js';
import pipeline from './plugins/pipeline.js';
import serviceAuth from './plugins/service-auth.js';
import aiAuditRoute from './routes/ai-audit.js';
import healthRoute from './routes/health.js';
import internalMissionsRoute from './routes/internal-missions.js';
import internalTickRoute from './routes/internal-tick.js';
import metricsRoute from './routes/metrics.js';
import { createTracing } from './tracing.js';
import { RUNNER_VERSION } from './version.js';

/** Fastify's own pluginTimeout default; closing gets it on top of `MANA_AI_SHUTDOWN_TIMEOUT_MS`. */
const PLUGIN_TIMEOUT_MS = 10_000;

// What an empty environment parses to: the one source of the defaults a partial AppConfig falls back to.
const DEFAULTS: RunnerConfig = parseConfig({});

/** The settings of the mission pipeline; each has the default of {@link RunnerConfig}'s variable. */
type PipelineConfigKey =
  | 'llmUrl'
  | 'llmModel'
  | 'llmApiKey'
  | 'llmAuthStyle'
  | 'llmTimeoutMs'
  | 'llmMaxRetries'
  | 'maxRounds'
  | 'locale'
  | 'policyMode'
  | 'compactMaxContext'
  | 'compactModel'
  | 'goalsAppId'
  | 'toolCatalogPath'
  | 'apiJwtPrivateKeyPem'
  | 'apiJwtAlgorithm'
  | 'apiJwtKeyId'
  | 'apiJwtIssuer'
  | 'apiJwtTier'
  | 'privateKeyPem'
  | 'maxInputsPerMission'
  | 'apiUrl'
  | 'apiAuth'
  | 'researchUrl'
  | 'deepResearchEnabled'
  | 'concurrency'
  | 'maxMissionsPerTick'
  | 'retryAfterMs'
  | 'probeIntervalMs'
  | 'maxRunMs'
  | 'leaseMs'
  | 'instanceId'
  | 'defaultTimeZone'
  | 'otelEndpoint';

/** The lease owner of an instance without `MANA_AI_INSTANCE_ID`: readable and unique. */
export function defaultInstanceId(): string {
  return `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
}

/** Collaborators of {@link buildApp}. */
export interface AppDeps {
  /** The one postgres.js pool of the process. */
  sql: Sql;
  /**
   * The client of the /health database check (default: `sql`). A separate connection keeps the
   * check from queueing behind mission work when every pooled connection is busy.
   */
  healthSql?: Sql;
  /** A pino logger (or anything Fastify accepts as `loggerInstance`). */
  logger: FastifyBaseLogger;
  clock: Clock;
  /** Replaces the wired pipeline's dispatcher (tests of the host alone); default: `app.pipeline.dispatcher`. */
  dispatcher?: Dispatcher;
  /** The event bus packages emit on (default: a new one); tracing subscribes to it. */
  events?: EventBus<ManaAiEvents>;
  /** fetch for outbound HTTP (LLM, research); default: the global one. */
  fetch?: typeof fetch;
  /** Sends the planner's LLM requests instead of `fetch` (`startServer` passes `createHttpTransport()`'s). */
  llmTransport?: LlmTransport;
  /** Reported by /health (default: the runner's package.json version). */
  version?: string;
}

/** The part of {@link RunnerConfig} the app reads. */
export type AppConfig = Pick<RunnerConfig, 'serviceKey' | 'tickIntervalMs' | 'tickEnabled' | 'shutdownTimeoutMs'> &
  Partial<
    Pick<
      RunnerConfig,
      | 'previousServiceKey'
      | 'nodeEnv'
      | 'authUrl'
      | 'authJwksUrl'
      | 'jwtIssuer'
      | 'jwtAudience'
      | 'devBypassAuth'
      | 'devUserId'
      | 'corsOrigins'
      | PipelineConfigKey
    >
  > & {
  /** Bound of the /health database check (default 1000 ms). */
  healthDatabaseTimeoutMs?: number;
};

/**
 * Builds the runner's Fastify app without listening: metrics, service auth on `/internal/*`, the
 * mission dispatcher (started on ready, stopped on close), one error handler, and the routes
 * (including the JWT-authenticated, CORS-enabled `GET /api/v1/me/ai-audit`).
 */
export function buildApp(deps: AppDeps, config: AppConfig): FastifyInstance {
  const settings: RunnerConfig = { ...DEFAULTS, ...config };
  // Fastify bounds every hook, preClose included, by pluginTimeout (10 s by default): closing must
  // outlast the dispatcher's wait for the runs in flight, or shutdown fails with exit 1.
  const app = Fastify({ loggerInstance: deps.logger, pluginTimeout: Math.max(PLUGIN_TIMEOUT_MS, config.shutdownTimeoutMs + PLUGIN_TIMEOUT_MS) });
  const events = deps.events ?? createEventBus<ManaAiEvents>();
  app.register(manaCore, { clock: deps.clock, events });
  // Spans are built from the same events the metrics read; root-level onClose runs after the
  // dispatcher's preClose wait, so the last runs' spans are complete before the flush.
  const tracing = createTracing(
    { events, logger: deps.logger, clock: deps.clock },
    { endpoint: settings.otelEndpoint, serviceVersion: deps.version ?? RUNNER_VERSION, ...(settings.nodeEnv ? { nodeEnv: settings.nodeEnv } : {}) },
  );
  app.addHook('onClose', async () => {
    await tracing.shutdown();
  });
  app.register(metrics);
  app.register(errorHandler);
  app.register(serviceAuth, { serviceKey: config.serviceKey, previousServiceKey: settings.previousServiceKey });
  registerPipeline(app, deps, settings);
  app.register(dispatcherPlugin, (parent) => ({
    dispatcher: deps.dispatcher ?? parent.pipeline.dispatcher,
    enabled: config.tickEnabled,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
  }));
  // After the dispatcher's preClose: a pass in flight has answered before connections are closed.
  app.register(connections);
  app.register(healthRoute, {
    sql: deps.healthSql ?? deps.sql,
    version: deps.version ?? RUNNER_VERSION,
    ...(config.healthDatabaseTimeoutMs === undefined ? {} : { databaseTimeoutMs: config.healthDatabaseTimeoutMs }),
  });
  app.register(metricsRoute);
  app.register(internalTickRoute);
  app.register(internalMissionsRoute);
  const authUrl = settings.authUrl;
  app.register(aiAuditRoute, {
    sql: deps.sql,
    clock: deps.clock,
    jwksUrl: jwksUrlOf(settings),
    issuers: [...new Set([settings.jwtIssuer, authUrl].filter((issuer): issuer is string => issuer !== undefined))],
    audience: settings.jwtAudience,
    corsOrigins: settings.corsOrigins,
    // The bypass is honoured in development only, whatever DEV_BYPASS_AUTH says elsewhere.
    bypassUserId: settings.nodeEnv === 'development' && settings.devBypassAuth ? settings.devUserId : undefined,
  });
  return app;
}

/**
 * Registers each package as its Fastify plugin, in dependency order, then the runner's pipeline
 * plugin that composes them into the tick. Later plugins read earlier decorators through option
 * functions, which Fastify evaluates when the plugin loads.
 */
function registerPipeline(app: FastifyInstance, deps: AppDeps, config: RunnerConfig): void {
  const fetchDeps = deps.fetch ? { fetch: deps.fetch } : {};
  const llmModel = config.llmModel;
  app.register(manaProjection, {
    sql: deps.sql,
    leaseMs: config.leaseMs,
    defaultTimeZone: config.defaultTimeZone,
  });
  app.register(manaCrypto, { privateKeyPem: config.privateKeyPem });
  app.register(manaResolvers, (parent) => ({
    sql: deps.sql,
    goalsAppId: config.goalsAppId,
    maxInputsPerMission: config.maxInputsPerMission,
    replayRecord: parent.manaProjection.replayRecord,
    crypto: {
      unwrapGrant: (grant, binding) => parent.manaCrypto.grants.unwrap(grant, binding),
      decryptValue: parent.manaCrypto.decryptValue,
    },
  }));
  app.register(manaPlanner, {
    deps: { ...fetchDeps, ...(deps.llmTransport ? { transport: deps.llmTransport } : {}) },
    locale: config.locale,
    policyMode: config.policyMode,
    maxRounds: config.maxRounds,
    maxToolCalls: config.maxToolCalls,
    maxToolArgumentBytes: config.maxToolArgumentBytes,
    maxSummaryChars: config.maxSummaryChars,
    model: llmModel,
    ...(config.toolCatalogPath === undefined ? {} : { catalog: readToolCatalog(config.toolCatalogPath) }),
    ...(config.compactMaxContext > 0
      ? { compaction: { maxContextTokens: config.compactMaxContext, ...(config.compactModel ? { model: config.compactModel } : {}) } }
      : {}),
    llm: {
      baseUrl: config.llmUrl,
      // Upstream sent the service key as the LLM bearer; MANA_LLM_API_KEY separates the two.
      apiKey: config.llmApiKey ?? config.serviceKey,
      authStyle: config.llmAuthStyle,
      model: llmModel,
      timeoutMs: config.llmTimeoutMs,
      maxRetries: config.llmMaxRetries,
      maxResponseBytes: config.llmMaxResponseBytes,
      // The provider label of mana_ai_provider_errors_total is the model's prefix, as upstream ("mana").
      provider: llmModel.split('/')[0] || 'llm',
    },
  });
  app.register(manaResearch, {
    sql: deps.sql,
    ...fetchDeps,
    shallow: {
      baseUrl: config.apiUrl,
      auth: shallowAuthOf(config, deps.clock),
    },
    deep: { baseUrl: config.researchUrl, serviceKey: config.serviceKey },
    stage: { deepResearchEnabled: config.deepResearchEnabled },
  });
  app.register(pipeline, { config, owner: config.instanceId ?? defaultInstanceId() });
}

/** How shallow research authenticates to mana-api (`MANA_API_AUTH`). */
function shallowAuthOf(config: RunnerConfig, clock: Clock): ShallowResearchAuth {
  if (config.apiAuth === 'none') return { type: 'none' };
  if (config.apiAuth === 'service-key') return { type: 'service-key', serviceKey: config.serviceKey };
  const { apiJwtPrivateKeyPem } = config;
  // parseConfig refuses jwt without a key; a hand-built AppConfig gets the same answer.
  if (apiJwtPrivateKeyPem === undefined) throw new ConfigError([{ variable: 'MANA_API_JWT_PRIVATE_KEY_PEM', expected: 'a PKCS#8 PEM when MANA_API_AUTH=jwt' }]);
  return { type: 'bearer', token: createApiJwtSigner({ ...config, apiJwtPrivateKeyPem }, clock) };
}

/** Reads the external tool catalog of `MANA_AI_TOOL_CATALOG_PATH` once, at boot; the planner validates its shape. */
function readToolCatalog(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError([{ variable: 'MANA_AI_TOOL_CATALOG_PATH', expected: 'a path to a readable JSON file' }], { cause: error });
  }
}

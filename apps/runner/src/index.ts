export { type AppConfig, type AppDeps, buildApp, defaultInstanceId } from './app.js';
export {
  CONFIG_VARIABLES,
  type ConfigVariable,
  DEFAULT_SERVICE_KEY,
  type Environment,
  type LogLevel,
  type PolicyMode,
  type RunnerConfig,
  jwksUrlOf,
  loadConfig,
  parseConfig,
} from './config.js';
export { type Database, EMBEDDED_DATA_DIR, EMBEDDED_DATABASE, type OpenDatabaseOptions, openDatabase } from './database.js';
export { type ConfigIssue, ConfigError, RunnerError, type RunnerErrorCode } from './errors.js';
export { type CreateLoggerOptions, REDACT_PATHS, createLogger } from './logger.js';
export { type MigrationReport, allMigrations, migrate } from './migrate.js';
export { type RunnerEvents, observeEvents } from './event-metrics.js';
export { type PipelineConfig, type PipelineDeps, createPipelineDispatcher, leaseHoldBoundMs } from './pipeline.js';
export { createPassDispatcher, emptyTickStats } from './host-dispatcher.js';
export type { DispatcherDecorator, DispatcherPluginOptions } from './plugins/dispatcher.js';
export type { PipelineDecorator, PipelinePluginOptions } from './plugins/pipeline.js';
export { statusForErrorCode } from './plugins/error-handler.js';
export { type RunnerMetrics, UNMATCHED_PATH, createRunnerMetrics } from './plugins/metrics.js';
export { SERVICE_KEY_REJECTED, createServiceKeyCheck } from './plugins/service-auth.js';
export { AI_AUDIT_PATH, type AiAuditRouteOptions, JWT_ALGORITHMS } from './routes/ai-audit.js';
export { type MissionView, toMissionView } from './routes/internal-missions.js';
export { type RunningServer, type StartServerOptions, startServer } from './server.js';
export { RUNNER_VERSION } from './version.js';

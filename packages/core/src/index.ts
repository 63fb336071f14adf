export {
  type Actor,
  type AgentActorInput,
  type AiActor,
  type FieldOrigin,
  type SystemActor,
  type UserActor,
  LEGACY_AI_PRINCIPAL,
  LEGACY_DISPLAY_NAME,
  LEGACY_SYSTEM_PRINCIPAL,
  LEGACY_USER_PRINCIPAL,
  SYSTEM_BOOTSTRAP,
  SYSTEM_MIGRATION,
  SYSTEM_MISSION_RUNNER,
  SYSTEM_PROJECTION,
  SYSTEM_RULE,
  SYSTEM_STREAM,
  USER_ACTOR,
  isAiActor,
  isFromMissionRunner,
  isSystemActor,
  isUserActor,
  makeAgentActor,
  makeSystemActor,
  makeUserActor,
  normalizeActor,
  originFromActor,
} from './actor.js';
export {
  type CadenceInvalidReason,
  type CadenceParseResult,
  DEFAULT_TIME_ZONE,
  type NextRunOptions,
  assertTimeZone,
  isRecurringCadence,
  nextRunAfter,
  parseCadence,
  zonedTimeToInstant,
} from './cadence.js';
export { type Clock, type ManualClock, createManualClock, isoNow, systemClock } from './clock.js';
export {
  type Agent,
  type AgentState,
  type AiPolicy,
  DEFAULT_AGENT_ID,
  DEFAULT_AGENT_NAME,
  type GrantDerivation,
  type IsoTimestamp,
  type IterationStatus,
  type Mission,
  type MissionCadence,
  type MissionGrant,
  type MissionInputRef,
  type MissionIteration,
  type MissionState,
  type PlanStep,
  type PlanStepIntent,
  type PlanStepStatus,
  type PolicyDecision,
  type ResolvedInput,
  SKIP_REASONS,
  type SkipReason,
  type TickStats,
  type ReplayRecord,
  type TokenUsage,
} from './domain.js';
export {
  type CoreErrorCode,
  CoreError,
  ManaAiError,
  type ManaAiErrorOptions,
  describeError,
  hasErrorCode,
} from './errors.js';
export { type EventBus, type EventBusOptions, type EventChannel, type EventListener, type EventMap, type ManaAiEvents, createEventBus } from './events.js';
export { type LogMethod, type Logger, noopLogger } from './logger.js';
export type { Migration, MigrationRewrite } from './migration.js';
export type { SqlClient, SqlQueries, SqlResult, SqlRow, SqlTransaction, SqlValue } from './sql.js';
export { type PlannedCall, buildServerIteration } from './iteration.js';
export { REPLACEMENT_CHARACTER, cutText, sanitizeJson, sanitizeText } from './text.js';
export { CIPHERTEXT_PREFIX, isCiphertext } from './ciphertext.js';
export type { WebCryptoKey, WebCryptoKeyUsage } from './web-crypto.js';
export { type DatabaseClock, createDatabaseClock } from './database-clock.js';
export { DISPATCHER_DEFAULTS, type Dispatcher, type DispatcherOptions, type DispatcherPorts, createDispatcher, emptyTickStats } from './dispatcher.js';
export { type Heartbeat, type HeartbeatOptions, createHeartbeat } from './heartbeat.js';
export { type MissionRunContext, type MissionRunState, createMissionRunState, runIds, runMission } from './mission-run.js';
export type {
  InputsPort,
  MissionClaim,
  MissionStorePort,
  PlanOutcome,
  PlannerPort,
  RefreshSummary,
  ResearchOutcome,
  ResearchPort,
  StoreSignal,
  StoreWatch,
  WriteBackRequest,
} from './ports.js';
export { AGENT_DECISIONS } from './run-events.js';
export type {
  AgentDecision,
  DispatcherEvents,
  EmitDispatcherEvent,
  MissionStage,
  RunIds,
  RunOutcome,
  WakeReason,
} from './run-events.js';

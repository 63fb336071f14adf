export { type ApplyMigrationsOptions, MIGRATION_LOCK_KEY, type MigrationReport, applyMigrations } from './apply-migrations.js';
export type { ClaimOptions, ClaimedMission, ClaimedSnapshot, LeaseStats, MissionKey, RenewOptions, RenewedLease } from './claims.js';
export { type ProjectionErrorCode, ProjectionError } from './errors.js';
export type {
  EntrySkippedEvent,
  FeedCursor,
  IterationWrittenEvent,
  MissionsClaimedEvent,
  MissionsReleasedEvent,
  MissionsRenewedEvent,
  ProjectionEvents,
  RefreshProgressEvent,
  RefreshResult,
  RowSkipReason,
  RowSkippedEvent,
  WriteBackFastRefusedEvent,
} from './events.js';
export { ITERATION_ID_NAMESPACE, deriveIterationId } from './iteration-id.js';
// The LWW merge, exported once in the browser-safe `./merge` entry point.
export * from './merge.js';
export { migrations } from './migrations.js';
export { type MissionStoreOptions, createMissionStore } from './mission-store.js';
export {
  DEFAULT_LEASE_MS,
  type Projection,
  type ProjectionDeps,
  type ProjectionOptions,
  createProjection,
} from './projection.js';
export type { MissionOverview } from './read-model.js';
export {
  MALFORMED_ENTRY_REASONS,
  MISSION_ENTRY_FIELDS,
  type MalformedEntry,
  type MalformedEntryReason,
  type MissionEntryField,
  canonicalInstant,
  toAgent,
  toMission,
} from './records.js';
export { REFRESH_LOCK_KEY, type RefreshOptions, SNAPSHOT_CURSOR } from './refresh.js';
export type { ReplayRecord } from './replay.js';
export { CHANGE_TRIGGER, CHANGES_CHANNEL, DUE_CHANNEL, type ProjectionSignal, type ProjectionWatch } from './signals.js';
export { type PruneTokenUsageOptions, TOKEN_USAGE_PRUNE_BATCH, TOKEN_USAGE_RETENTION_MS, type TokenUsageEntry } from './token-usage.js';
export { setTransactionUser, withUser } from './with-user.js';
export {
  RUNNER_CLIENT_ID,
  type WriteIterationInput,
  type WriteIterationResult,
  nextRunAtAfterRun,
} from './write-back.js';

export {
  DEFAULT_AUDIT_LIMIT,
  type DecryptAudit,
  type DecryptAuditDeps,
  type DecryptAuditEntry,
  type DecryptAuditQuery,
  type DecryptAuditRow,
  type DecryptAuditStatus,
  MAX_AUDIT_LIMIT,
  clampAuditLimit,
  createDecryptAudit,
} from './audit.js';
export {
  type DecryptFailureReason,
  ENC_PREFIX,
  type EncryptedResolverDeps,
  checkScope,
  classifyDecryptError,
  createEncryptedResolver,
} from './encrypted.js';
export { ResolversError, type ResolversErrorCode } from './errors.js';
export type { InputWithheldReason, InputsDroppedReason, ResolverEvents, ScopeViolationReason } from './events.js';
export {
  ENCRYPTED_INPUTS,
  EVENTS_INPUT,
  INPUT_TABLES,
  type EncryptedInputDefinition,
  JOURNAL_INPUT,
  KONTEXT_INPUT,
  NOTES_INPUT,
  PROFILE_FIELDS,
  PROFILE_INPUT,
  TASKS_INPUT,
  asText,
  truncate,
} from './format.js';
export { DEFAULT_GOALS_APP_ID, type GoalsResolverDeps, type GoalsResolverOptions, createGoalsResolver } from './goals.js';
export {
  DEFAULT_MAX_INPUTS_PER_MISSION,
  type InputResolvers,
  type InputResolversDeps,
  type InputResolversOptions,
  type MissionInputs,
  createInputResolvers,
} from './input-resolvers.js';
export { createInputsPort } from './inputs-port.js';
export { migrations } from './migrations.js';
export type {
  GrantUnwrapOutcome,
  InputResolver,
  ReplayRecord,
  ResolverContext,
  ResolverCrypto,
  UnwrappedGrant,
} from './ports.js';
export { RESOLVE_PARALLELISM, type ResolverRegistry, type ResolverRegistryDeps, createResolverRegistry } from './registry.js';

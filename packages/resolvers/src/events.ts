import type { DecryptAuditStatus } from './audit.js';

/** Why an input was refused by the grant's allowlist. */
export type ScopeViolationReason = 'table-not-in-grant' | 'record-not-in-grant-allowlist';

/** Why a decrypted input is not used: its decrypt audit row could not be written (fail closed). */
export type InputWithheldReason = 'audit-failed';
/** Why inputs of a mission were left unresolved (`mana_ai_inputs_dropped_total{reason}`). */
export type InputsDroppedReason = 'max-inputs-per-mission';

/** Events emitted by the resolvers (the runner maps them to metrics and logs). */
export type ResolverEvents = {
  /** A resolver threw; its input yields nothing. */
  'resolver.failed': { missionId: string; module: string; error: string };
  /** A grant could not be used (`mana_ai_grant_skips_total{reason}`). */
  'grant.skipped': { missionId: string; reason: string };
  /** An input outside the grant was requested (`mana_ai_grant_scope_violations_total{table}`). */
  'grant.scope-violation': { missionId: string; table: string; reason: ScopeViolationReason };
  /** Fields of one record were decrypted (`mana_ai_decrypts_total{table}` += `fields`). */
  'decrypt.succeeded': { missionId: string; table: string; fields: number };
  /** An audit row was written. */
  'decrypt.audited': { missionId: string; table: string; status: DecryptAuditStatus; reason: string | null };
  /** An audit row could not be written (the tick goes on). */
  'decrypt.audit-failed': { missionId: string; table: string; error: string };
  /** A decrypted input was dropped before reaching the planner (`audit-failed`: its audit row could not be written). */
  'input.withheld': { missionId: string; module: string; table: string; reason: InputWithheldReason };
  /** A mission lists more inputs than the bound: `dropped` of its `listed` inputs were not resolved. */
  'inputs.dropped': { missionId: string; listed: number; dropped: number; reason: InputsDroppedReason };
  /** A referenced record has no live state in the log. */
  'input.missing': { missionId: string; module: string; table: string };
};

// The resolvers' slice of the shared bus (see ManaAiEvents in @mana-ai/core).
declare module '@mana-ai/core' {
  interface ManaAiEvents extends ResolverEvents {}
}

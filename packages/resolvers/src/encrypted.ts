import type { EventChannel } from '@mana-ai/core';
import type { DecryptAudit } from './audit.js';
import type { ResolverEvents, ScopeViolationReason } from './events.js';
import type { EncryptedInputDefinition } from './format.js';
import type { InputResolver, ReplayRecord, ResolverCrypto, UnwrappedGrant } from './ports.js';

/** The prefix of an encrypted field value. */
export const ENC_PREFIX = 'enc:1:';

/** Collaborators of {@link createEncryptedResolver}. */
export interface EncryptedResolverDeps {
  replayRecord: ReplayRecord;
  crypto: ResolverCrypto;
  audit: DecryptAudit;
  events?: EventChannel<ResolverEvents>;
}

/** Audit reasons of a failed decryption. */
export type DecryptFailureReason = 'ciphertext-malformed' | 'ciphertext-tampered-or-wrong-key' | 'decrypt-failed';

/** Maps a decryption error to its audit reason (by crypto error code, else by message as upstream). */
export function classifyDecryptError(error: unknown): DecryptFailureReason {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  if (code === 'CRYPTO_MALFORMED_VALUE') return 'ciphertext-malformed';
  if (code === 'CRYPTO_DECRYPT_FAILED') return 'ciphertext-tampered-or-wrong-key';
  const message = error instanceof Error ? `${error.name} ${error.message}` : '';
  if (message.includes('malformed')) return 'ciphertext-malformed';
  if (/OperationError|decrypt/i.test(message)) return 'ciphertext-tampered-or-wrong-key';
  return 'decrypt-failed';
}

/** Whether `table:recordId` is inside the grant: table granted and id on the allowlist. */
export function checkScope(grant: UnwrappedGrant, table: string, recordId: string): ScopeViolationReason | null {
  if (!grant.derivation.tables.includes(table)) return 'table-not-in-grant';
  if (!grant.derivation.recordIds.includes(`${table}:${recordId}`)) return 'record-not-in-grant-allowlist';
  return null;
}

/**
 * Creates a resolver for an encrypted input kind. Per call: the mission's grant belongs to another
 * mission → `scope-violation` / `mission-mismatch` audit, `null`; no grant otherwise → `null` (no
 * database access, no audit); outside the grant → `scope-violation` audit + event, `null`; record
 * absent → `null` + `input.missing`; every top-level `enc:1:` field decrypted → `ok` audit,
 * formatted input; a decryption failure → `failed` audit with the reason, `null`. Exactly one audit
 * row per attempt, and fail closed: a decrypted input whose `ok` row cannot be written is withheld
 * (`input.withheld` / `audit-failed`, `null`).
 */
export function createEncryptedResolver(deps: EncryptedResolverDeps, definition: EncryptedInputDefinition): InputResolver {
  return async (ref, context) => {
    const { grant } = context;
    const audit = (status: 'ok' | 'failed' | 'scope-violation', reason: string | null): Promise<boolean> =>
      deps.audit.write({
        userId: context.userId,
        missionId: context.missionId,
        iterationId: context.iterationId,
        tableName: ref.table,
        recordId: ref.id,
        status,
        reason,
      });
    if (!grant) {
      // Another mission's grant copied onto this one: show the attempt in the user's audit tab.
      if (context.grantSkipReason === 'mission-mismatch') await audit('scope-violation', 'mission-mismatch');
      return null;
    }
    const violation = checkScope(grant, ref.table, ref.id);
    if (violation) {
      deps.events?.emit('grant.scope-violation', { missionId: context.missionId, table: ref.table, reason: violation });
      await audit('scope-violation', violation);
      return null;
    }
    const record = await deps.replayRecord(context.userId, definition.appId, ref.table, ref.id);
    if (!record) {
      deps.events?.emit('input.missing', { missionId: context.missionId, module: ref.module, table: ref.table });
      return null;
    }
    const encrypted = Object.keys(record).filter(
      (field) => typeof record[field] === 'string' && (record[field] as string).startsWith(ENC_PREFIX),
    );
    const decrypted: Record<string, unknown> = { ...record };
    try {
      const values = await Promise.all(encrypted.map((field) => deps.crypto.decryptValue(grant.key, record[field] as string)));
      encrypted.forEach((field, index) => {
        decrypted[field] = values[index];
      });
    } catch (error) {
      await audit('failed', classifyDecryptError(error));
      return null;
    }
    if (encrypted.length > 0) {
      deps.events?.emit('decrypt.succeeded', { missionId: context.missionId, table: ref.table, fields: encrypted.length });
    }
    if (!(await audit('ok', null))) {
      deps.events?.emit('input.withheld', { missionId: context.missionId, module: ref.module, table: ref.table, reason: 'audit-failed' });
      return null;
    }
    const title = definition.formatTitle?.(decrypted) || (typeof decrypted.title === 'string' ? decrypted.title : definition.label);
    return { id: ref.id, module: ref.module, table: ref.table, title, content: definition.formatContent(decrypted) };
  };
}

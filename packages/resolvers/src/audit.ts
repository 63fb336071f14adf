import { type EventChannel, type Logger, type SqlClient, type SqlTransaction, noopLogger } from '@mana-ai/core';
import { ResolversError, errorLabel } from './errors.js';
import type { ResolverEvents } from './events.js';

/** Outcome of one decrypt attempt. */
export type DecryptAuditStatus = 'ok' | 'failed' | 'scope-violation';

/** One decrypt attempt to record. */
export interface DecryptAuditEntry {
  userId: string;
  missionId: string;
  iterationId?: string | undefined;
  tableName: string;
  recordId: string;
  status: DecryptAuditStatus;
  reason?: string | null | undefined;
}

/** One audit row as the audit API returns it (docs/wire-contract.md#decrypt-audit, docs/wire-contract.md#routes). */
export interface DecryptAuditRow {
  /** The bigint id as a string. */
  id: string;
  missionId: string;
  iterationId: string | null;
  tableName: string;
  recordId: string;
  status: DecryptAuditStatus;
  reason: string | null;
  /** `toISOString()` of the row's timestamp. */
  ts: string;
}

/** Filters of {@link DecryptAudit.read}. */
export interface DecryptAuditQuery {
  /** Only rows of this mission. */
  missionId?: string | undefined;
  /** Maximum rows, clamped to 1…1000; missing or not finite = 200. */
  limit?: number | undefined;
}

/** Collaborators of {@link createDecryptAudit}. */
export interface DecryptAuditDeps {
  sql: SqlClient;
  logger?: Logger;
  events?: EventChannel<ResolverEvents>;
}

/** Writes and reads `mana_ai.decrypt_audit` under the user's RLS scope. */
export interface DecryptAudit {
  /**
   * Records one attempt; resolves `true` when the row was written. Never rejects: a failure is
   * logged, emitted as `decrypt.audit-failed` and resolves `false` (the caller must not use a
   * decrypt whose row was not written).
   */
  write(entry: DecryptAuditEntry): Promise<boolean>;
  /** The user's rows, newest first. Rejects with `RESOLVERS_INVALID_ARGUMENT` or `RESOLVERS_AUDIT_READ_FAILED`. */
  read(userId: string, query?: DecryptAuditQuery): Promise<DecryptAuditRow[]>;
}

/** Default number of rows {@link DecryptAudit.read} returns. */
export const DEFAULT_AUDIT_LIMIT = 200;
/** Most rows {@link DecryptAudit.read} returns. */
export const MAX_AUDIT_LIMIT = 1000;

/** `limit` clamped to 1…1000 (truncated to an integer); missing or not finite = 200. */
export function clampAuditLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit)) return DEFAULT_AUDIT_LIMIT;
  return Math.max(1, Math.min(MAX_AUDIT_LIMIT, Math.trunc(limit)));
}

/** Runs `work` in a transaction whose `app.current_user_id` is `userId` (transaction-local). */
async function withUser<T>(sql: SqlClient, userId: string, work: (tx: SqlTransaction) => Promise<T>): Promise<T> {
  if (typeof userId !== 'string' || userId === '') {
    throw new ResolversError('RESOLVERS_INVALID_ARGUMENT', 'withUser: empty userID');
  }
  return (await sql.begin(async (tx) => {
    await tx`SELECT set_config('app.current_user_id', ${userId}, true)`;
    return work(tx);
  })) as T;
}

interface AuditRecord {
  id: string;
  mission_id: string;
  iteration_id: string | null;
  table_name: string;
  record_id: string;
  status: DecryptAuditStatus;
  reason: string | null;
  ts: Date;
}

/** Creates the decrypt audit writer/reader. */
export function createDecryptAudit(deps: DecryptAuditDeps): DecryptAudit {
  const { sql } = deps;
  const logger = deps.logger ?? noopLogger;
  return {
    async write(entry) {
      try {
        await withUser(sql, entry.userId, async (tx) => {
          await tx`
            INSERT INTO mana_ai.decrypt_audit
              (user_id, mission_id, iteration_id, table_name, record_id, status, reason)
            VALUES (${entry.userId}, ${entry.missionId}, ${entry.iterationId ?? null}, ${entry.tableName},
                    ${entry.recordId}, ${entry.status}, ${entry.reason ?? null})`;
        });
        deps.events?.emit('decrypt.audited', {
          missionId: entry.missionId,
          table: entry.tableName,
          status: entry.status,
          reason: entry.reason ?? null,
        });
        return true;
      } catch (error) {
        const label = errorLabel(error);
        logger.error(
          { missionId: entry.missionId, table: entry.tableName, status: entry.status, error: label },
          'decrypt audit write failed',
        );
        deps.events?.emit('decrypt.audit-failed', { missionId: entry.missionId, table: entry.tableName, error: label });
        return false;
      }
    },
    async read(userId, query = {}) {
      const limit = clampAuditLimit(query.limit);
      const missionId = query.missionId;
      try {
        const rows = await withUser(
          sql,
          userId,
          (tx) => tx<AuditRecord[]>`
            SELECT id::text AS id, mission_id, iteration_id, table_name, record_id, status, reason, ts
            FROM mana_ai.decrypt_audit
            WHERE user_id = ${userId} AND (${missionId ?? null}::text IS NULL OR mission_id = ${missionId ?? null})
            ORDER BY ts DESC, id DESC
            LIMIT ${limit}`,
        );
        return rows.map((row) => ({
          id: row.id,
          missionId: row.mission_id,
          iterationId: row.iteration_id,
          tableName: row.table_name,
          recordId: row.record_id,
          status: row.status,
          reason: row.reason,
          ts: row.ts.toISOString(),
        }));
      } catch (error) {
        if (ResolversError.isInstance(error)) throw error;
        throw new ResolversError('RESOLVERS_AUDIT_READ_FAILED', 'reading the decrypt audit failed', {
          retryable: true,
          details: { error: errorLabel(error) },
        });
      }
    },
  };
}

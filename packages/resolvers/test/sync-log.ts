import type { Sql } from 'postgres';
import type { ReplayRecord } from '../src/ports.js';

/** A row to append to `sync_changes` in tests. */
export interface ChangeRow {
  userId: string;
  appId: string;
  table: string;
  recordId: string;
  op: 'insert' | 'update' | 'delete';
  data: Record<string, unknown> | null;
  fieldMeta?: Record<string, string>;
  createdAt?: string;
}

/** Appends rows to `sync_changes` (as the superuser test client). */
export async function appendChanges(sql: Sql, rows: readonly ChangeRow[]): Promise<void> {
  for (const row of rows) {
    await sql`
      INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_meta, client_id, created_at)
      VALUES (${row.appId}, ${row.table}, ${row.recordId}, ${row.userId}, ${row.op},
              ${row.data === null ? null : sql.json(row.data as never)}, ${sql.json((row.fieldMeta ?? {}) as never)},
              'test-client', ${row.createdAt ?? new Date().toISOString()})`;
  }
}

interface LogRow {
  op: string;
  data: Record<string, unknown> | null;
  field_meta: Record<string, string> | null;
  created_at: Date;
}

/**
 * A small single-record replay per docs/wire-contract.md#last-writer-wins-replay for tests (the real one lives in
 * @mana-ai/projection): RLS-scoped read, first row taken whole, later fields by string LWW with the
 * `created_at` fallback, a delete row or a truthy `deletedAt` → null.
 */
export function createTestReplayRecord(sql: Sql): ReplayRecord {
  return async (userId, appId, table, recordId) => {
    const rows = (await sql.begin(async (tx) => {
      await tx`SELECT set_config('app.current_user_id', ${userId}, true)`;
      return tx<LogRow[]>`
        SELECT op, data, field_meta, created_at FROM sync_changes
        WHERE user_id = ${userId} AND app_id = ${appId} AND table_name = ${table} AND record_id = ${recordId}
        ORDER BY created_at ASC`;
    })) as LogRow[];
    let record: Record<string, unknown> | null = null;
    let stamps: Record<string, string> = {};
    for (const row of rows) {
      if (row.op === 'delete') return null;
      if (record === null) {
        record = { id: recordId, ...(row.data ?? {}) };
        stamps = { ...(row.field_meta ?? {}) };
        continue;
      }
      if (row.data === null) continue;
      for (const [field, value] of Object.entries(row.data)) {
        const incoming = row.field_meta?.[field] ?? row.created_at.toISOString();
        if (incoming >= (stamps[field] ?? '')) {
          record[field] = value;
          stamps[field] = incoming;
        }
      }
    }
    if (record === null || record.deletedAt) return null;
    return record;
  };
}

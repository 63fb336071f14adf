import type { ReplayRecord } from '@mana-ai/core';
import { type ProjectionContext, MILLISECOND_STAMP } from './context.js';
import { type ChangeRow, mergeChanges } from './lww.js';
import { withUser } from './with-user.js';

/** Replays one record of any synced table (the resolvers' port; defined in core). */
export type { ReplayRecord };

/**
 * Replays one record from its full history under `withUser` (docs/wire-contract.md#last-writer-wins-replay): null when it has no
 * rows, was deleted, or carries a truthy `deletedAt`; no `__fieldMeta` in the result. Rows with
 * malformed data are skipped and reported as `row.skipped`.
 */
export async function replayRecord(
  context: ProjectionContext,
  userId: string,
  appId: string,
  table: string,
  recordId: string,
): Promise<Record<string, unknown> | null> {
  const rows = await withUser(
    context.sql,
    userId,
    (tx) => tx<{ id: string; op: string; data: unknown; field_meta: unknown; stamp: string }[]>`
      SELECT id::text AS id, op, data, field_meta, to_char(created_at AT TIME ZONE 'UTC', ${MILLISECOND_STAMP}) AS stamp
      FROM sync_changes
      WHERE user_id = ${userId} AND app_id = ${appId} AND table_name = ${table} AND record_id = ${recordId}
      ORDER BY created_at ASC, id ASC`,
  );
  if (rows.length === 0) return null;
  const changes: ChangeRow[] = rows.map((row) => ({
    op: row.op,
    recordId,
    data: row.data,
    fieldMeta: row.field_meta,
    createdAt: row.stamp,
  }));
  return mergeChanges(changes, 'record', (change, reason) => {
    const source = rows[changes.indexOf(change)];
    context.events.emit('row.skipped', { changeId: source?.id ?? '', table, userId, recordId, reason });
  });
}

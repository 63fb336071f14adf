import { insertLogRows, missionRecord } from '@mana-ai/test-postgres';
import type { Sql } from 'postgres';

export { clearProjection, connectAsRunner, RUNNER_PASSWORD } from '@mana-ai/test-postgres';

/** One row to put into `sync_changes` (as mana-sync would, written here with the superuser). */
export interface TestChange {
  userId: string;
  recordId: string;
  op?: 'insert' | 'update' | 'delete';
  table?: string;
  appId?: string;
  data?: unknown;
  fieldMeta?: unknown;
  /** Explicit `created_at` (any timestamptz literal); default now(). */
  createdAt?: string;
}

/** Inserts rows with the superuser client, in order; returns their ids. */
export function insertChanges(sql: Sql, changes: readonly TestChange[]): Promise<string[]> {
  return insertLogRows(
    sql,
    changes.map((change) => ({
      userId: change.userId,
      recordId: change.recordId,
      ...(change.op ? { op: change.op } : {}),
      ...(change.table ? { table: change.table } : {}),
      ...(change.appId ? { appId: change.appId } : {}),
      dataJson: change.data === undefined ? undefined : JSON.stringify(change.data),
      fieldMetaJson: JSON.stringify(change.fieldMeta ?? {}),
      ...(change.createdAt ? { createdAt: change.createdAt } : {}),
    })),
  );
}

/** A mission insert's data as the webapp writes it. */
export const missionData = missionRecord;

/** Everything a snapshot table holds, keyed `<user>/<id>`. */
export async function snapshotsOf(sql: Sql, table: 'mission_snapshots' | 'agent_snapshots'): Promise<Map<string, Record<string, unknown>>> {
  const idColumn = table === 'mission_snapshots' ? 'mission_id' : 'agent_id';
  const rows = await sql.unsafe<{ key: string; record: Record<string, unknown> }[]>(
    `SELECT user_id || '/' || ${idColumn} AS key, record FROM mana_ai.${table}`,
  );
  return new Map(rows.map((row) => [row.key, row.record]));
}

/** The database's now in epoch ms: tests place due times relative to the clock the projection uses. */
export async function databaseNowMs(sql: Sql): Promise<number> {
  const [row] = await sql<{ now: number }[]>`SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now`;
  return row!.now;
}

/** `toISOString()` of `baseMs + offsetMs`. */
export function isoAt(baseMs: number, offsetMs = 0): string {
  return new Date(baseMs + offsetMs).toISOString();
}

/**
 * Lets `ms` pass for every lease: moves `lease_until` back by `ms` (the database's clock cannot be
 * set, the leases can).
 */
export async function ageLeases(sql: Sql, ms: number): Promise<void> {
  await sql`
    UPDATE mana_ai.mission_snapshots SET lease_until = lease_until - make_interval(secs => ${ms / 1000})
    WHERE lease_until IS NOT NULL`;
}

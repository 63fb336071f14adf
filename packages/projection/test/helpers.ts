import type { TestDatabase } from '@mana-ai/test-postgres';
import type { Sql } from 'postgres';

/** Password the tests give the (cluster-wide) runner role so they can log in as it. */
export const RUNNER_TEST_PASSWORD = 'mana-ai-runner-test';

/** A client logged in as `mana_ai_runner` (no BYPASSRLS), as the runner runs in production. */
export async function connectAsRunner(db: TestDatabase, options: { max?: number } = {}): Promise<Sql> {
  await db.sql.unsafe(`ALTER ROLE mana_ai_runner LOGIN PASSWORD '${RUNNER_TEST_PASSWORD}'`);
  return db.connect({ url: db.urlFor('mana_ai_runner', RUNNER_TEST_PASSWORD), max: options.max ?? 4 });
}

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
export async function insertChanges(sql: Sql, changes: readonly TestChange[]): Promise<string[]> {
  const ids: string[] = [];
  for (const change of changes) {
    const data = change.data === undefined ? null : JSON.stringify(change.data);
    const fieldMeta = JSON.stringify(change.fieldMeta ?? {});
    const [row] = await sql<{ id: string }[]>`
      INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_meta, client_id, created_at)
      VALUES (${change.appId ?? 'ai'}, ${change.table ?? 'aiMissions'}, ${change.recordId}, ${change.userId},
              ${change.op ?? 'insert'}, ${data}::text::jsonb, ${fieldMeta}::text::jsonb, 'test-client',
              coalesce(${change.createdAt ?? null}::text::timestamptz, now()))
      RETURNING id::text AS id`;
    ids.push(row!.id);
  }
  return ids;
}

/** A mission insert's data as the webapp writes it. */
export function missionData(id: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    createdAt: '2026-04-20T08:00:00.000Z',
    title: `Mission ${id}`,
    conceptMarkdown: '',
    objective: `Objective of ${id}`,
    inputs: [],
    cadence: { kind: 'interval', everyMinutes: 60 },
    state: 'active',
    nextRunAt: '2026-04-21T06:00:00.000Z',
    iterations: [],
    ...overrides,
  };
}

/** Everything a snapshot table holds, keyed `<user>/<id>`. */
export async function snapshotsOf(sql: Sql, table: 'mission_snapshots' | 'agent_snapshots'): Promise<Map<string, Record<string, unknown>>> {
  const idColumn = table === 'mission_snapshots' ? 'mission_id' : 'agent_id';
  const rows = await sql.unsafe<{ key: string; record: Record<string, unknown> }[]>(
    `SELECT user_id || '/' || ${idColumn} AS key, record FROM mana_ai.${table}`,
  );
  return new Map(rows.map((row) => [row.key, row.record]));
}

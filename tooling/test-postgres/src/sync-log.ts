import type { Sql } from 'postgres';
import type { TestDatabase } from './index.js';

/**
 * The one password every test gives the cluster-wide `mana_ai_runner` role. Test files of all
 * projects run at once against one cluster: two passwords would lock each other's new connections out.
 */
export const RUNNER_PASSWORD = 'mana-ai-runner-test';

/** The URL of `db` for `mana_ai_runner`, after giving the role its test login. */
export async function runnerUrl(db: TestDatabase): Promise<string> {
  await db.sql.unsafe(`ALTER ROLE mana_ai_runner LOGIN PASSWORD '${RUNNER_PASSWORD}'`);
  return db.urlFor('mana_ai_runner', RUNNER_PASSWORD);
}

/** A client logged in as `mana_ai_runner` (no superuser, no BYPASSRLS), as the runner runs in production. */
export async function connectAsRunner(db: TestDatabase, options: { max?: number } = {}): Promise<Sql> {
  return db.connect({ url: await runnerUrl(db), max: options.max ?? 4 });
}

/** Empties the log and every table the runner projects it into (snapshots, tombstones, cursors, token usage). */
export async function clearProjection(sql: Sql): Promise<void> {
  await sql`TRUNCATE sync_changes, mana_ai.mission_snapshots, mana_ai.agent_snapshots, mana_ai.snapshot_tombstones,
    mana_ai.projection_cursors, mana_ai.token_usage`;
}

/** One `sync_changes` row, written with the superuser as mana-sync would. */
export interface LogRow {
  userId: string;
  recordId: string;
  appId?: string;
  table?: string;
  op?: string;
  /** The `data` column as JSON text (`'null'` is a JSON null; undefined is SQL NULL). */
  dataJson?: string | undefined;
  /** The `field_meta` column as JSON text (undefined is `{}`; `'sql-null'` is SQL NULL). */
  fieldMetaJson?: string | undefined;
  /** An explicit `created_at` (any timestamptz literal); default now(). */
  createdAt?: string;
}

/** Inserts rows in order with `sql` (a superuser client); returns their ids. */
export async function insertLogRows(sql: Sql, rows: readonly LogRow[]): Promise<string[]> {
  const ids: string[] = [];
  for (const row of rows) {
    const fieldMeta = row.fieldMetaJson === 'sql-null' ? null : (row.fieldMetaJson ?? '{}');
    const [inserted] = await sql<{ id: string }[]>`
      INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_meta, client_id, created_at)
      VALUES (${row.appId ?? 'ai'}, ${row.table ?? 'aiMissions'}, ${row.recordId}, ${row.userId}, ${row.op ?? 'insert'},
              ${row.dataJson ?? null}::text::jsonb, ${fieldMeta}::text::jsonb, 'test-client',
              coalesce(${row.createdAt ?? null}::text::timestamptz, now()))
      RETURNING id::text AS id`;
    if (!inserted) throw new Error('insert returned no row');
    ids.push(inserted.id);
  }
  return ids;
}

/** A mission as the webapp inserts it, due at 2026-04-21T06:00Z. */
export function missionRecord(id: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
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

/** An agent as the webapp inserts it. */
export function agentRecord(id: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, name: `Agent ${id}`, role: 'helper', state: 'active', maxConcurrentMissions: 5, ...overrides };
}

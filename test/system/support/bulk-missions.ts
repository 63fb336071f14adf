import type { Sql } from 'postgres';

/** How {@link seedBulkMissions} spreads missions over users and agents. */
export interface BulkMissionShape {
  /** How many missions: `m-<from>` … `m-<from + count - 1>`. */
  count: number;
  /** Number of the first mission (default 1): a second batch of one database starts after the first. */
  from?: number;
  /** Whether to insert the agents too (default true; false for a second batch of the same users and agents). */
  agents?: boolean;
  /** Users `u-0` … `u-<users-1>`; mission `g` belongs to user `g % users`. */
  users: number;
  /** Agents per user `a-<user>-0` …; mission `g` runs under agent `(g / users) % agentsPerUser`. */
  agentsPerUser: number;
  /** `nextRunAt` of every mission (`toISOString()` form): in the past = due. */
  nextRunAt: string;
  /** Interval cadence of every mission, in minutes. */
  everyMinutes: number;
  /** `maxConcurrentMissions` of every agent. */
  maxConcurrentMissions: number;
}

/** The user, agent and title of mission number `g` under `shape` (as the SQL below computes them). */
export function bulkMissionOf(g: number, shape: Pick<BulkMissionShape, 'users' | 'agentsPerUser'>): { missionId: string; userId: string; agentId: string } {
  const user = g % shape.users;
  return { missionId: `m-${g}`, userId: `u-${user}`, agentId: `a-${user}-${Math.floor(g / shape.users) % shape.agentsPerUser}` };
}

/**
 * Inserts the agents and missions of `shape` as `sync_changes` rows (app `ai`, tables `agents` and
 * `aiMissions`) the way the webapp syncs them, in two set-based statements (one without the agents).
 */
export async function seedBulkMissions(sql: Sql, shape: BulkMissionShape): Promise<void> {
  const from = shape.from ?? 1;
  if (shape.agents !== false) {
    await sql`
    INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_meta, client_id)
    SELECT 'ai', 'agents', 'a-' || u || '-' || k, 'u-' || u, 'insert',
           jsonb_build_object('id', 'a-' || u || '-' || k, 'name', 'Agent ' || u || '-' || k, 'role', 'helper', 'state', 'active',
                              'maxConcurrentMissions', ${shape.maxConcurrentMissions}::int),
           '{}'::jsonb, 'bulk-seed'
    FROM generate_series(0, ${shape.users - 1}) AS u, generate_series(0, ${shape.agentsPerUser - 1}) AS k`;
  }
  await sql`
    INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_meta, client_id)
    SELECT 'ai', 'aiMissions', 'm-' || g, 'u-' || (g % ${shape.users}), 'insert',
           jsonb_build_object(
             'id', 'm-' || g, 'createdAt', '2026-01-01T00:00:00.000Z',
             'title', 'Mission m-' || g, 'objective', 'Plan the week of m-' || g, 'conceptMarkdown', '',
             'inputs', '[]'::jsonb, 'cadence', jsonb_build_object('kind', 'interval', 'everyMinutes', ${shape.everyMinutes}::int),
             'state', 'active', 'nextRunAt', ${shape.nextRunAt}::text, 'iterations', '[]'::jsonb,
             'agentId', 'a-' || (g % ${shape.users}) || '-' || ((g / ${shape.users}) % ${shape.agentsPerUser})),
           '{}'::jsonb, 'bulk-seed'
    FROM generate_series(${from}::int, ${from + shape.count - 1}::int) AS g`;
}

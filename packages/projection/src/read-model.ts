import type { Agent, Mission, MissionIteration } from '@mana-ai/core';
import { type ProjectionContext, MILLISECOND_STAMP } from './context.js';
import { toAgent, toMission } from './records.js';
import { withUser } from './with-user.js';

/** A projected mission as operators see it. */
export interface MissionOverview {
  mission: Mission;
  state: string;
  /** The stored `nextRunAt` text, as the user's devices wrote it. */
  nextRunAt: string | null;
  /** `nextRunAt` as parsed for due checks (`toISOString()` form; null when missing or unparseable). */
  dueAt: string | null;
  deleted: boolean;
  lease: { owner: string; until: string } | null;
  lastIteration: MissionIteration | null;
}

interface SnapshotRow {
  user_id: string;
  mission_id: string;
  record: Record<string, unknown>;
  due_at: string | null;
  lease_owner: string | null;
  lease_until: string | null;
}

/** A user's projected missions with state, next run, lease and last iteration, by id. */
export async function listUserMissions(context: ProjectionContext, userId: string): Promise<MissionOverview[]> {
  const rows = await withUser(
    context.sql,
    userId,
    (tx) => tx<SnapshotRow[]>`
    SELECT user_id, mission_id, record,
           to_char(next_run_at AT TIME ZONE 'UTC', ${MILLISECOND_STAMP}) AS due_at,
           lease_owner, to_char(lease_until AT TIME ZONE 'UTC', ${MILLISECOND_STAMP}) AS lease_until
    FROM mana_ai.mission_snapshots WHERE user_id = ${userId}
    ORDER BY mission_id`,
  );
  return rows.map((row) => {
    const mission = toMission(row.user_id, { ...row.record, id: row.mission_id });
    return {
      mission,
      state: mission.state,
      nextRunAt: mission.nextRunAt ?? null,
      dueAt: row.due_at,
      deleted: Boolean(row.record.deletedAt),
      lease: row.lease_owner && row.lease_until ? { owner: row.lease_owner, until: row.lease_until } : null,
      lastIteration: mission.iterations.at(-1) ?? null,
    };
  });
}

/**
 * A user's agents that are not soft-deleted (any state: gates read it), like upstream's
 * `loadActiveAgents`.
 */
export async function loadAgents(context: ProjectionContext, userId: string): Promise<Agent[]> {
  const rows = await withUser(
    context.sql,
    userId,
    (tx) => tx<{ agent_id: string; record: Record<string, unknown> }[]>`
    SELECT agent_id, record FROM mana_ai.agent_snapshots
    WHERE user_id = ${userId} AND (record->>'deletedAt') IS NULL
    ORDER BY agent_id`,
  );
  return rows.map((row) => toAgent(userId, { ...row.record, id: row.agent_id }));
}

/** One agent, or null when unknown or soft-deleted. */
export async function loadAgent(context: ProjectionContext, userId: string, agentId: string): Promise<Agent | null> {
  const [row] = await withUser(
    context.sql,
    userId,
    (tx) => tx<{ agent_id: string; record: Record<string, unknown> }[]>`
    SELECT agent_id, record FROM mana_ai.agent_snapshots
    WHERE user_id = ${userId} AND agent_id = ${agentId} AND (record->>'deletedAt') IS NULL`,
  );
  return row ? toAgent(userId, { ...row.record, id: row.agent_id }) : null;
}

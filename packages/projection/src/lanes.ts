import type { SqlTransaction } from '@mana-ai/core';

/** A claim lane: the missions of one agent of one user (`agent_id` null = no lane). */
export interface LaneKey {
  user_id: string;
  agent_id: string | null;
}

/**
 * Recomputes the lanes of `keys` (head = earliest scheduled mission, the agent's limit) inside the
 * caller's transaction, after its snapshot writes and before it commits (migration 0005,
 * `mana_ai.sync_mission_lanes`). Lanes are locked in one order, so call it once, last, with every
 * lane the transaction touched: the old and the new agent of each mission written.
 */
export async function syncLanes(tx: SqlTransaction, keys: readonly LaneKey[]): Promise<void> {
  const unique = new Map<string, LaneKey>();
  for (const key of keys) {
    if (key.agent_id !== null) unique.set(JSON.stringify([key.user_id, key.agent_id]), key);
  }
  if (unique.size === 0) return;
  await tx`SELECT mana_ai.sync_mission_lanes(${JSON.stringify([...unique.values()])}::text::jsonb)`;
}

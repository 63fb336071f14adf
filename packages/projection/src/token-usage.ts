import type { ProjectionContext } from './context.js';
import { ProjectionError } from './errors.js';
import { withUser } from './with-user.js';

/** One LLM spend to record against an agent's rolling budget. */
export interface TokenUsageEntry {
  userId: string;
  agentId: string;
  missionId: string;
  tokens: number;
}

/** Tokens an agent used in the 24 hours before the database's now (UPSTREAM §4.6). */
export async function tokenUsageLast24h(context: ProjectionContext, userId: string, agentId: string): Promise<number> {
  const [row] = await withUser(
    context.sql,
    userId,
    (tx) => tx<{ total: string }[]>`
    SELECT COALESCE(SUM(tokens_used), 0)::text AS total FROM mana_ai.token_usage
    WHERE user_id = ${userId} AND agent_id = ${agentId} AND ts > now() - interval '24 hours'`,
  );
  return Number.parseInt(row?.total ?? '0', 10);
}

/**
 * Records spend that is not part of a write-back (failed loops, compaction calls: B13) at the
 * database's now. Zero or negative amounts are ignored.
 */
export async function recordTokenUsage(context: ProjectionContext, entry: TokenUsageEntry): Promise<void> {
  if (!entry.userId || !entry.agentId || !entry.missionId) {
    throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', 'token usage needs user, agent and mission ids');
  }
  if (!(entry.tokens > 0)) return;
  await withUser(
    context.sql,
    entry.userId,
    (tx) => tx`
    INSERT INTO mana_ai.token_usage (user_id, agent_id, mission_id, tokens_used, ts)
    VALUES (${entry.userId}, ${entry.agentId}, ${entry.missionId}, ${Math.round(entry.tokens)}, clock_timestamp())`,
  );
}

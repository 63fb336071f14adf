import type { ProjectionContext } from './context.js';
import { ProjectionError } from './errors.js';
import { RUNNER_CLIENT_ID } from './write-back.js';
import { withUser } from './with-user.js';

/** One LLM spend to record against an agent's rolling budget. */
export interface TokenUsageEntry {
  userId: string;
  agentId: string;
  missionId: string;
  tokens: number;
  /**
   * The iteration the spend was for (a claim's `iterationId`). When the runner's write-back of that
   * iteration is in the log, it recorded this spend with it, and the entry is not recorded again: a
   * write-back that committed but whose answer was lost (the connection dropped while reading the
   * COMMIT reply) is not counted twice by the caller's failure path.
   */
  iterationId?: string | undefined;
}

/** Tokens an agent used in the 24 hours before the database's now (docs/wire-contract.md#token-usage). */
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
 * Records spend that is not part of a write-back (failed loops, compaction calls: B13, a write-back
 * that failed) at the database's now. Zero or negative amounts are ignored. With `iterationId` the
 * entry is skipped when the runner's write-back of that iteration is in the log (it recorded the
 * spend); the check waits for a write-back of the mission still in flight (it takes the mission's
 * write lock first), so a COMMIT whose answer was lost is seen.
 */
export async function recordTokenUsage(context: ProjectionContext, entry: TokenUsageEntry): Promise<void> {
  if (!entry.userId || !entry.agentId || !entry.missionId) {
    throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', 'token usage needs user, agent and mission ids');
  }
  if (!(entry.tokens > 0)) return;
  const iterationId = entry.iterationId;
  await withUser(context.sql, entry.userId, async (tx) => {
    if (iterationId === undefined) {
      await tx`
        INSERT INTO mana_ai.token_usage (user_id, agent_id, mission_id, tokens_used, ts)
        VALUES (${entry.userId}, ${entry.agentId}, ${entry.missionId}, ${Math.round(entry.tokens)}, clock_timestamp())`;
      return;
    }
    // The write-back's own lock (mana_ai.write_back_write, migration 0008): a write-back in flight
    // ends before the check reads the log, in a statement of its own so that its snapshot sees what
    // that write-back committed.
    await tx`SELECT pg_advisory_xact_lock(hashtextextended(${`mana_ai.mission\n${entry.userId}\n${entry.missionId}`}, 0))`;
    await tx`
      INSERT INTO mana_ai.token_usage (user_id, agent_id, mission_id, tokens_used, ts)
      SELECT ${entry.userId}, ${entry.agentId}, ${entry.missionId}, ${Math.round(entry.tokens)}, clock_timestamp()
      WHERE NOT EXISTS (
        SELECT 1 FROM sync_changes
        WHERE user_id = ${entry.userId} AND app_id = 'ai' AND table_name = 'aiMissions'
          AND record_id = ${entry.missionId} AND client_id = ${RUNNER_CLIENT_ID}
          AND actor->>'iterationId' = ${iterationId}
      )`;
  });
}

/** How long token usage rows are kept by default: the 24 h budget window and a day of margin. */
export const TOKEN_USAGE_RETENTION_MS = 48 * 3_600_000;
/** Rows one prune deletes at most by default. */
export const TOKEN_USAGE_PRUNE_BATCH = 5000;

/** Options of {@link pruneTokenUsage}. */
export interface PruneTokenUsageOptions {
  /** Keep rows younger than this (database time); at least 24 hours. Default {@link TOKEN_USAGE_RETENTION_MS}. */
  olderThanMs?: number;
  /** Delete at most this many rows (1..100000). Default {@link TOKEN_USAGE_PRUNE_BATCH}. */
  maxRows?: number;
}

/**
 * Deletes the oldest token usage rows past the retention, at most `maxRows` per call, across all
 * users (through the `SECURITY DEFINER` function `mana_ai.prune_token_usage`; only a count comes
 * back). Returns how many rows were deleted: a full batch means more may be left for the next call.
 */
export async function pruneTokenUsage(context: ProjectionContext, options: PruneTokenUsageOptions = {}): Promise<number> {
  const olderThanMs = options.olderThanMs ?? TOKEN_USAGE_RETENTION_MS;
  const maxRows = options.maxRows ?? TOKEN_USAGE_PRUNE_BATCH;
  if (!Number.isFinite(olderThanMs) || olderThanMs < 86_400_000) {
    throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', 'olderThanMs must be at least 24 hours (the budget window)');
  }
  if (!Number.isInteger(maxRows) || maxRows < 1 || maxRows > 100_000) {
    throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', 'maxRows must be an integer 1..100000');
  }
  const [row] = await context.sql<{ deleted: number }[]>`SELECT mana_ai.prune_token_usage(${olderThanMs / 1000}, ${maxRows}) AS deleted`;
  return row?.deleted ?? 0;
}

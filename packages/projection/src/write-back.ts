import {
  DEFAULT_AGENT_NAME,
  LEGACY_AI_PRINCIPAL,
  type MissionIteration,
  buildServerIteration,
  hasErrorCode,
  makeAgentActor,
  nextRunAfter,
} from '@mana-ai/core';
import { type ProjectionContext, MILLISECOND_STAMP } from './context.js';
import { ProjectionError } from './errors.js';
import { deriveIterationId } from './iteration-id.js';
import { applyChange, mergeStateFromSnapshot, snapshotRecord } from './lww.js';
import { canonicalInstant } from './records.js';
import { setTransactionUser } from './with-user.js';

/** The `client_id` of every row the runner writes (UPSTREAM §1.7). */
export const RUNNER_CLIENT_ID = 'mana-ai-runner';

/** One tool call the planner recorded. */
export interface PlannedToolCall {
  toolName: string;
  params: Record<string, unknown>;
  /** Step summary (default: the tool name, as upstream). */
  summary?: string;
}

/** A finished plan: the final assistant text and the recorded tool calls, in order. */
export interface IterationPlan {
  summary: string;
  steps: readonly PlannedToolCall[];
}

/**
 * Builds the iteration the runner writes (UPSTREAM §8.2), keys in wire order: step ids
 * `<iterationId>-<index>`, status `planned`, `awaiting-review` with steps else `approved`,
 * `source: 'server'`.
 */
export function planToIteration(plan: IterationPlan, iterationId: string, nowIso: string): MissionIteration {
  return buildServerIteration({ iterationId, calls: plan.steps, summary: plan.summary, startedAt: nowIso, finishedAt: nowIso });
}

/**
 * The next `nextRunAt` after a run at `nowMs`, with core's cadence math: `daily`/`weekly` read the
 * mission's `timezone` (falling back to `defaultTimeZone` when absent or unknown). `manual`, `cron`,
 * unknown or invalid cadences yield null: planned once, then not due until the user changes it.
 */
export function nextRunAtAfterRun(record: Record<string, unknown>, nowMs: number, defaultTimeZone: string): string | null {
  const own = typeof record.timezone === 'string' && record.timezone !== '' ? record.timezone : undefined;
  const attempt = (timeZone: string): string | null => nextRunAfter(record.cadence, nowMs, { timeZone })?.toISOString() ?? null;
  try {
    return attempt(own ?? defaultTimeZone);
  } catch (error) {
    if (own !== undefined && hasErrorCode(error, 'CORE_INVALID_TIME_ZONE')) {
      try {
        return attempt(defaultTimeZone);
      } catch {
        return null;
      }
    }
    return null;
  }
}

/** What {@link writeIteration} needs. */
export interface WriteIterationInput {
  userId: string;
  missionId: string;
  /** The due slot of the claim (its `dueSlot`): with the mission id it determines the iteration id. */
  dueSlot: string;
  plan: IterationPlan;
  /** The mission's agent; absent = the legacy default agent (`legacy:ai-default`, `Mana`). */
  agent?: { id: string; name: string } | undefined;
  /** The actor's rationale (default: the mission's objective). */
  rationale?: string | undefined;
  /** The lease owner whose lease ends with this write (none ended when omitted). */
  owner?: string | undefined;
  /** Tokens the plan cost, recorded for the agent's budget in the same transaction. */
  tokenUsage?: { agentId: string; tokens: number } | undefined;
}

/** What {@link writeIteration} did. */
export interface WriteIterationResult {
  iterationId: string;
  /** True when this slot's iteration was already written: nothing new was inserted. */
  duplicate: boolean;
  /** The `nextRunAt` written (null for manual/unknown cadences; the stored one for duplicates). */
  nextRunAt: string | null;
  iteration: MissionIteration;
}

/**
 * Appends one planned iteration to a mission: a single `sync_changes` row (UPSTREAM §8.1,
 * Appendix B) whose `data` holds the whole `iterations` array and the advanced `nextRunAt`, both
 * stamped in `field_meta`; the snapshot is updated, the lease released and the token usage
 * recorded in the same transaction, under `withUser`. A retry for the same (mission, due slot)
 * is recognised by its derived iteration id and inserts nothing.
 */
export async function writeIteration(
  context: ProjectionContext,
  input: WriteIterationInput,
  options: { defaultTimeZone: string },
): Promise<WriteIterationResult> {
  if (!input.missionId || !input.dueSlot) {
    throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', 'writeIteration needs a mission id and a due slot');
  }
  const iterationId = await deriveIterationId(input.missionId, input.dueSlot);
  const nowMs = context.clock.now();
  const nowIso = new Date(nowMs).toISOString();
  const iteration = planToIteration(input.plan, iterationId, nowIso);
  const outcome = await context.sql.begin(async (tx) => {
    await setTransactionUser(tx, input.userId);
    await tx`SELECT pg_advisory_xact_lock(hashtextextended(${`mana_ai.mission\n${input.userId}\n${input.missionId}`}, 0))`;
    const [snapshot] = await tx<{ record: Record<string, unknown>; applied: string }[]>`
      SELECT record, last_applied_at::text AS applied FROM mana_ai.mission_snapshots
      WHERE user_id = ${input.userId} AND mission_id = ${input.missionId}
      FOR UPDATE`;
    if (!snapshot) {
      throw new ProjectionError('PROJECTION_MISSION_NOT_FOUND', 'mission has no snapshot (deleted or never projected)', {
        details: { missionId: input.missionId },
      });
    }
    // The snapshot may lag behind the log: merge this mission's newer rows first so the array we
    // rewrite includes a client's latest iteration edits (narrows B20 to truly concurrent writes).
    const newer = await tx<{ op: string; data: unknown; field_meta: unknown; stamp: string }[]>`
      SELECT op, data, field_meta, to_char(created_at AT TIME ZONE 'UTC', ${MILLISECOND_STAMP}) AS stamp
      FROM sync_changes
      WHERE table_name = 'aiMissions' AND record_id = ${input.missionId} AND user_id = ${input.userId} AND app_id = 'ai'
        AND created_at > ${snapshot.applied}::text::timestamptz
      ORDER BY created_at, id`;
    const state = mergeStateFromSnapshot(input.missionId, snapshot.record);
    for (const row of newer) {
      applyChange(state, { op: row.op, recordId: input.missionId, data: row.data, fieldMeta: row.field_meta, createdAt: row.stamp });
    }
    if (state.deleted || state.record === null) {
      throw new ProjectionError('PROJECTION_MISSION_NOT_FOUND', 'mission was deleted', { details: { missionId: input.missionId } });
    }
    const record = state.record;
    const iterations = Array.isArray(record.iterations) ? (record.iterations as MissionIteration[]) : [];
    const [written] = await tx<{ exists: boolean }[]>`
      SELECT EXISTS (
        SELECT 1 FROM sync_changes
        WHERE user_id = ${input.userId} AND app_id = 'ai' AND table_name = 'aiMissions'
          AND record_id = ${input.missionId} AND client_id = ${RUNNER_CLIENT_ID}
          AND actor->>'iterationId' = ${iterationId}
      ) AS exists`;
    const duplicate = written?.exists === true || iterations.some((existing) => existing?.id === iterationId);
    let nextRunAt: string | null;
    if (duplicate) {
      nextRunAt = typeof record.nextRunAt === 'string' ? record.nextRunAt : null;
    } else {
      nextRunAt = nextRunAtAfterRun(record, nowMs, options.defaultTimeZone);
      const data = { iterations: [...iterations, iteration], nextRunAt };
      const fieldMeta = { iterations: nowIso, nextRunAt: nowIso };
      const actor = makeAgentActor({
        agentId: input.agent?.id ?? LEGACY_AI_PRINCIPAL,
        displayName: input.agent?.name ?? DEFAULT_AGENT_NAME,
        missionId: input.missionId,
        iterationId,
        rationale: input.rationale ?? String(record.objective ?? ''),
      });
      const [inserted] = await tx<{ stamp: string }[]>`
        INSERT INTO sync_changes
          (app_id, table_name, record_id, user_id, op, data, field_meta, client_id, schema_version, actor, origin)
        VALUES
          ('ai', 'aiMissions', ${input.missionId}, ${input.userId}, 'update', ${JSON.stringify(data)}::text::jsonb,
           ${JSON.stringify(fieldMeta)}::text::jsonb, ${RUNNER_CLIENT_ID}, 1, ${JSON.stringify(actor)}::text::jsonb, 'agent')
        RETURNING to_char(created_at AT TIME ZONE 'UTC', ${MILLISECOND_STAMP}) AS stamp`;
      applyChange(state, { op: 'update', recordId: input.missionId, data, fieldMeta, createdAt: inserted!.stamp });
      const merged = snapshotRecord(state)!;
      await tx`
        UPDATE mana_ai.mission_snapshots
        SET record = ${JSON.stringify(merged)}::text::jsonb, next_run_at = ${canonicalInstant(merged.nextRunAt)}::text::timestamptz,
            updated_at = now()
        WHERE user_id = ${input.userId} AND mission_id = ${input.missionId}`;
      if (input.tokenUsage && input.tokenUsage.tokens > 0) {
        await tx`
          INSERT INTO mana_ai.token_usage (user_id, agent_id, mission_id, tokens_used, ts)
          VALUES (${input.userId}, ${input.tokenUsage.agentId}, ${input.missionId}, ${Math.round(input.tokenUsage.tokens)}, ${nowIso}::text::timestamptz)`;
      }
    }
    if (input.owner) {
      await tx`
        UPDATE mana_ai.mission_snapshots SET lease_owner = NULL, lease_until = NULL
        WHERE user_id = ${input.userId} AND mission_id = ${input.missionId} AND lease_owner = ${input.owner}`;
    }
    return { duplicate, nextRunAt };
  });
  const result: WriteIterationResult = { iterationId, duplicate: outcome.duplicate, nextRunAt: outcome.nextRunAt, iteration };
  context.events.emit('iteration.written', {
    userId: input.userId,
    missionId: input.missionId,
    iterationId,
    duplicate: result.duplicate,
    nextRunAt: result.nextRunAt,
    steps: iteration.plan.length,
  });
  return result;
}

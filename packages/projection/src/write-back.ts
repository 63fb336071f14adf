import { type AiActor, type MissionIteration, assertTimeZone, nextRunAfter, parseCadence } from '@mana-ai/core';
import { type ProjectionContext, MILLISECOND_STAMP } from './context.js';
import { ProjectionError } from './errors.js';
import { deriveIterationId } from './iteration-id.js';
import { syncLanes } from './lanes.js';
import { applyChange, mergeStateFromSnapshot, snapshotRecord } from './lww.js';
import { canonicalInstant } from './records.js';
import { assertUserId } from './with-user.js';
import type { TransactionSql } from 'postgres';

/** The `client_id` of every row the runner writes (docs/wire-contract.md#the-row-the-runner-writes). */
export const RUNNER_CLIENT_ID = 'mana-ai-runner';

/** The mission's zone: its own `timezone` when that is a known IANA zone, else `defaultTimeZone`. */
function missionTimeZone(record: Record<string, unknown>, defaultTimeZone: string): string {
  const own = record.timezone;
  if (typeof own !== 'string' || own === '') return defaultTimeZone;
  try {
    assertTimeZone(own);
    return own;
  } catch {
    return defaultTimeZone;
  }
}

/**
 * The next `nextRunAt` after a run at `nowMs`, with core's cadence math: `daily`/`weekly`/`cron`
 * read the mission's `timezone` (falling back to `defaultTimeZone` when absent or unknown).
 * `manual`, unknown or invalid cadences yield null: planned once, then not due until the user changes it.
 */
export function nextRunAtAfterRun(record: Record<string, unknown>, nowMs: number, defaultTimeZone: string): string | null {
  const parsed = parseCadence(record.cadence);
  if (!parsed.ok) return null;
  return nextRunAfter(parsed.cadence, nowMs, { timeZone: missionTimeZone(record, defaultTimeZone) })?.toISOString() ?? null;
}

/** Whether the runner schedules the mission itself: a valid `cron` cadence and no `nextRunAt` (the webapp computes none for cron). */
function awaitsFirstCronRun(record: Record<string, unknown>): boolean {
  if (canonicalInstant(record.nextRunAt) !== null) return false;
  const parsed = parseCadence(record.cadence);
  return parsed.ok && parsed.cadence.kind === 'cron';
}

/**
 * The `next_run_at` of a mission snapshot: the record's `nextRunAt`, or for a cron mission without
 * one the first slot after `lastChangeAt`, the mission's last change in the log (database time).
 * The runner plans it at that slot and the write-back stores the next one in the log.
 */
export function snapshotNextRunAt(record: Record<string, unknown>, lastChangeAt: string, defaultTimeZone: string): string | null {
  if (!awaitsFirstCronRun(record)) return canonicalInstant(record.nextRunAt);
  return nextRunAtAfterRun(record, Date.parse(lastChangeAt), defaultTimeZone);
}

/**
 * Whether a write-back must recompute its lane: only when the mission changed lane or activity, or
 * moved earlier (a user's concurrent "run now" merged in). Advancing `nextRunAt` — what nearly every
 * write-back does — leaves the lane's head at most early, never late: claims skip such a lane and
 * correct its head (see claims.ts), so concurrent write-backs of one agent never queue on its lane.
 */
function laneNeedsSync(before: string, after: string | undefined): boolean {
  if (after === undefined) return true;
  if (after === before) return false;
  const [agentBefore, activeBefore, dueBefore] = JSON.parse(before) as [string | null, boolean, number | null];
  const [agentAfter, activeAfter, dueAfter] = JSON.parse(after) as [string | null, boolean, number | null];
  if (agentBefore !== agentAfter || activeBefore !== activeAfter) return true;
  if (!activeAfter || dueAfter === null) return false;
  return dueBefore === null || dueAfter < dueBefore;
}

/** What {@link writeIteration} needs. */
export interface WriteIterationInput {
  userId: string;
  missionId: string;
  /** The due slot of the claim (its `dueSlot`): with the mission id it determines the iteration id. */
  dueSlot: string;
  /**
   * The iteration to append, built once by core (`buildServerIteration`) and written as given; its
   * `id` must be `deriveIterationId(missionId, dueSlot)`.
   */
  iteration: MissionIteration;
  /** The row's `actor`, built by core (`makeAgentActor`) for this mission and iteration, written as given. */
  actor: AiActor;
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
  /**
   * False when the row leaves `nextRunAt` alone: a duplicate, or a user changed `nextRunAt` while
   * the mission ran (a "run now" or a reschedule), whose value is kept.
   */
  nextRunAtWritten: boolean;
  /** The mission's `nextRunAt` after the write: the advanced one (null for manual/unknown cadences), else the stored one. */
  nextRunAt: string | null;
  iteration: MissionIteration;
}

async function assertWritable(input: WriteIterationInput): Promise<void> {
  if (!input.missionId || !input.dueSlot || canonicalInstant(input.dueSlot) === null) {
    throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', 'writeIteration needs a mission id and a due slot');
  }
  const { iteration, actor } = input;
  if (typeof iteration !== 'object' || iteration === null || iteration.id !== (await deriveIterationId(input.missionId, input.dueSlot))) {
    throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', 'the iteration id is not the one derived from the mission and due slot');
  }
  if (typeof actor !== 'object' || actor === null || actor.kind !== 'ai' || actor.iterationId !== iteration.id || actor.missionId !== input.missionId) {
    throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', 'the actor must be the AI actor of this mission and iteration');
  }
}

/**
 * Appends one planned iteration to a mission: a single `sync_changes` row (docs/wire-contract.md#the-row-the-runner-writes,
 * Appendix B) whose `data` holds the whole `iterations` array and the advanced `nextRunAt`, both
 * stamped in `field_meta` with the database's time at the write (milliseconds, truncated, so never
 * ahead of the database's now); the next run is computed from that same time. The snapshot and its
 * claim lane are updated, the lease released and the token usage recorded in the same transaction,
 * under `withUser`. When the mission's `nextRunAt` is no longer the claim's due slot, a user changed
 * it while the mission ran: the row then carries `iterations` only and the user's value stands. A
 * retry for the same (mission, due slot) is recognised by its derived iteration id and inserts nothing.
 */
export async function writeIteration(
  context: ProjectionContext,
  input: WriteIterationInput,
): Promise<WriteIterationResult> {
  await assertWritable(input);
  const { iteration, actor } = input;
  const iterationId = iteration.id;
  const dueInstant = canonicalInstant(input.dueSlot);
  const outcome = await context.sql.begin(async (tx) => {
    // One round trip: the RLS user of this transaction, and the mission's write lock.
    assertUserId(input.userId);
    await tx`
      SELECT set_config('app.current_user_id', ${input.userId}, true),
             pg_advisory_xact_lock(hashtextextended(${`mana_ai.mission\n${input.userId}\n${input.missionId}`}, 0))`;
    const [snapshot] = await tx<{ record: Record<string, unknown>; applied: string; agent_id: string | null; lane_state: string }[]>`
      SELECT record, last_applied_at::text AS applied, agent_id, json_build_array(agent_id, active, extract(epoch FROM next_run_at))::text AS lane_state
      FROM mana_ai.mission_snapshots
      WHERE user_id = ${input.userId} AND mission_id = ${input.missionId}
      FOR UPDATE`;
    if (!snapshot) {
      throw new ProjectionError('PROJECTION_MISSION_NOT_FOUND', 'mission has no snapshot (deleted or never projected)', {
        details: { missionId: input.missionId },
      });
    }
    // The snapshot may lag behind the log: merge this mission's newer rows first so the array we
    // rewrite includes a client's latest iteration edits (narrows B20 to truly concurrent writes),
    // and a nextRunAt the user set meanwhile is seen.
    // In the same round trip: whether this slot's iteration was already written (a retried write),
    // and the database's time at the write, truncated to the stamp's millisecond — one instant for
    // the field stamps, the cadence math and the token usage. The probe row comes first.
    const rows = await tx<
      { op: string | null; data: unknown; field_meta: unknown; stamp: string; exists: boolean | null; stamp_ms: number | null }[]
    >`
      SELECT NULL AS op, NULL::jsonb AS data, NULL::jsonb AS field_meta, to_char(t.at AT TIME ZONE 'UTC', ${MILLISECOND_STAMP}) AS stamp,
        EXISTS (
          SELECT 1 FROM sync_changes
          WHERE user_id = ${input.userId} AND app_id = 'ai' AND table_name = 'aiMissions'
            AND record_id = ${input.missionId} AND client_id = ${RUNNER_CLIENT_ID}
            AND actor->>'iterationId' = ${iterationId}
        ) AS exists,
        (extract(epoch FROM t.at) * 1000)::float8 AS stamp_ms,
        0 AS part, NULL::timestamptz AS created_at, NULL::uuid AS id
      FROM (SELECT date_trunc('milliseconds', clock_timestamp()) AS at) AS t
      UNION ALL
      SELECT op, data, field_meta, to_char(created_at AT TIME ZONE 'UTC', ${MILLISECOND_STAMP}), NULL, NULL, 1, created_at, id
      FROM sync_changes
      WHERE table_name = 'aiMissions' AND record_id = ${input.missionId} AND user_id = ${input.userId} AND app_id = 'ai'
        AND created_at > ${snapshot.applied}::text::timestamptz
      ORDER BY part, created_at, id`;
    const [probe, ...newer] = rows;
    const state = mergeStateFromSnapshot(input.missionId, snapshot.record);
    for (const row of newer) {
      applyChange(state, { op: row.op ?? '', recordId: input.missionId, data: row.data, fieldMeta: row.field_meta, createdAt: row.stamp });
    }
    if (state.deleted || state.record === null) {
      throw new ProjectionError('PROJECTION_MISSION_NOT_FOUND', 'mission was deleted', { details: { missionId: input.missionId } });
    }
    const record = state.record;
    const iterations = Array.isArray(record.iterations) ? (record.iterations as MissionIteration[]) : [];
    const duplicate = probe?.exists === true || iterations.some((existing) => existing?.id === iterationId);
    const stored = typeof record.nextRunAt === 'string' ? record.nextRunAt : null;
    if (duplicate) {
      await releaseLease(tx, input);
      return { duplicate, nextRunAt: stored, nextRunAtWritten: false };
    }
    const stamp = probe!.stamp;
    const stampMs = Math.round(probe!.stamp_ms ?? Date.parse(stamp));
    // Planned for `dueSlot`; a different nextRunAt now is a user's edit made while the mission ran.
    // A cron mission without one ran at the slot the runner derived (snapshotNextRunAt).
    const rescheduled = !awaitsFirstCronRun(record) && canonicalInstant(record.nextRunAt) !== dueInstant;
    const nextRunAt = rescheduled ? stored : nextRunAtAfterRun(record, stampMs, context.defaultTimeZone);
    const data: Record<string, unknown> = rescheduled ? { iterations: [...iterations, iteration] } : { iterations: [...iterations, iteration], nextRunAt };
    const fieldMeta: Record<string, string> = rescheduled ? { iterations: stamp } : { iterations: stamp, nextRunAt: stamp };
    const [inserted] = await tx<{ stamp: string }[]>`
      INSERT INTO sync_changes
        (app_id, table_name, record_id, user_id, op, data, field_meta, client_id, schema_version, actor, origin)
      VALUES
        ('ai', 'aiMissions', ${input.missionId}, ${input.userId}, 'update', ${JSON.stringify(data)}::text::jsonb,
         ${JSON.stringify(fieldMeta)}::text::jsonb, ${RUNNER_CLIENT_ID}, 1, ${JSON.stringify(actor)}::text::jsonb, 'agent')
      RETURNING to_char(created_at AT TIME ZONE 'UTC', ${MILLISECOND_STAMP}) AS stamp`;
    applyChange(state, { op: 'update', recordId: input.missionId, data, fieldMeta, createdAt: inserted!.stamp });
    const merged = snapshotRecord(state)!;
    const tokens = input.tokenUsage && input.tokenUsage.tokens > 0 ? Math.round(input.tokenUsage.tokens) : 0;
    // The snapshot update and the token usage in one round trip (the usage row only when tokens > 0).
    const [written] = await tx<{ agent_id: string | null; lane_state: string }[]>`
      WITH usage AS (
        INSERT INTO mana_ai.token_usage (user_id, agent_id, mission_id, tokens_used, ts)
        SELECT ${input.userId}, ${input.tokenUsage?.agentId ?? ''}, ${input.missionId}, ${tokens}, ${stamp}::text::timestamptz
        WHERE ${tokens}::int > 0
      )
      UPDATE mana_ai.mission_snapshots
      SET record = ${JSON.stringify(merged)}::text::jsonb, next_run_at = ${canonicalInstant(merged.nextRunAt)}::text::timestamptz,
          updated_at = now(),
          lease_owner = CASE WHEN lease_owner = ${input.owner ?? null}::text THEN NULL ELSE lease_owner END,
          lease_until = CASE WHEN lease_owner = ${input.owner ?? null}::text THEN NULL ELSE lease_until END
      WHERE user_id = ${input.userId} AND mission_id = ${input.missionId}
      RETURNING agent_id, json_build_array(agent_id, active, extract(epoch FROM next_run_at))::text AS lane_state`;
    if (laneNeedsSync(snapshot.lane_state, written?.lane_state)) {
      await syncLanes(tx, [
        { user_id: input.userId, agent_id: snapshot.agent_id },
        { user_id: input.userId, agent_id: written?.agent_id ?? null },
      ]);
    }
    return { duplicate, nextRunAt, nextRunAtWritten: !rescheduled };
  });
  const result: WriteIterationResult = { iterationId, iteration, ...outcome };
  context.events.emit('iteration.written', {
    userId: input.userId,
    missionId: input.missionId,
    iterationId,
    duplicate: result.duplicate,
    nextRunAt: result.nextRunAt,
    nextRunAtWritten: result.nextRunAtWritten,
    steps: iteration.plan.length,
  });
  return result;
}

async function releaseLease(tx: TransactionSql, input: WriteIterationInput): Promise<void> {
  if (!input.owner) return;
  await tx`
    UPDATE mana_ai.mission_snapshots SET lease_owner = NULL, lease_until = NULL
    WHERE user_id = ${input.userId} AND mission_id = ${input.missionId} AND lease_owner = ${input.owner}`;
}

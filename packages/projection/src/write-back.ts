import { type AiActor, type MissionIteration, assertTimeZone, nextRunAfter, parseCadence } from '@mana-ai/core';
import type { ClaimedSnapshot } from './claims.js';
import type { ProjectionContext } from './context.js';
import { ProjectionError } from './errors.js';
import { deriveIterationId } from './iteration-id.js';
import { applyChange, mergeStateFromSnapshot, snapshotRecord } from './lww.js';
import { canonicalInstant } from './records.js';
import { assertUserId } from './with-user.js';

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
  /**
   * The snapshot this run's claim read (`ClaimedMission.snapshot`): the first attempt merges from it
   * and writes without reading the snapshot again; when the mission changed since (or without it)
   * the write-back reads first. Left unchanged.
   */
  claimed?: ClaimedSnapshot | undefined;
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
 * How often a write-back reads and merges again when the mission changed between its read and its
 * write (a user's edit, a refresh, a lease renewal) before it gives up with `PROJECTION_WRITE_CONFLICT`.
 */
const WRITE_ATTEMPTS = 5;

/** A row of `mana_ai.write_back_read`: the snapshot first (with `version`), then the newer log rows. */
interface ReadRow {
  op: string | null;
  data: unknown;
  field_meta: unknown;
  stamp: string;
  version: string | null;
  duplicate: boolean | null;
  stamp_ms: number | null;
}

/** What one write attempt merges and writes against. */
interface WriteBase {
  /** The stored snapshot record (with `__fieldMeta`). */
  record: Record<string, unknown>;
  /** The snapshot row's version the write requires. */
  version: string | null;
  /** The mission's log rows the snapshot has not applied, oldest first. */
  newer: ReadRow[];
  /** Whether the log already holds this iteration's row. */
  duplicate: boolean;
  /** The stamp of the row's fields and the time the next run is computed from: database time, milliseconds. */
  stamp: string;
  stampMs: number;
}

/**
 * Appends one planned iteration to a mission: a single `sync_changes` row (docs/wire-contract.md#the-row-the-runner-writes,
 * Appendix B) whose `data` holds the whole `iterations` array and the advanced `nextRunAt`, both
 * stamped in `field_meta` with the database's time (milliseconds, never ahead of the database's
 * now); the next run is computed from that same time. The snapshot and its claim lane are updated,
 * the lease released and the token usage recorded in the same transaction, under the user's
 * row-level security. When the mission's `nextRunAt` is no longer the claim's due slot, a user
 * changed it while the mission ran: the row then carries `iterations` only and the user's value
 * stands. A retry for the same (mission, due slot) is recognised by its derived iteration id and
 * inserts nothing.
 *
 * No explicit transaction (migrations 0008, 0011). With `claimed` (the snapshot the claim read),
 * the first attempt is one statement: it merges from the claimed record with no unseen log rows,
 * stamps with the claim's database time plus the time elapsed since on the local monotonic clock,
 * and `mana_ai.write_back_write` writes only if the snapshot is still at the claimed version, no
 * row of the mission arrived that it has not applied, and the stamp is not ahead of the database's
 * now. Otherwise (and without `claimed`) the write-back reads: `mana_ai.write_back_read` returns the
 * snapshot with its version, the database's time and the mission's log rows the snapshot has not
 * applied yet, merged here (last writer wins, lww.ts), and `mana_ai.write_back_write` writes the
 * result only if the snapshot is still at that version and no row arrived since, else it reads
 * again (at most {@link WRITE_ATTEMPTS} reads, then `PROJECTION_WRITE_CONFLICT`). A refused fast
 * write emits `write-back.fast-refused`; every write emits `iteration.written`.
 */
export async function writeIteration(
  context: ProjectionContext,
  input: WriteIterationInput,
): Promise<WriteIterationResult> {
  await assertWritable(input);
  assertUserId(input.userId);
  const { iteration } = input;
  let outcome = input.claimed ? await writeOnce(context, input, claimedBase(input.claimed)) : undefined;
  if (input.claimed && outcome === undefined) {
    context.events.emit('write-back.fast-refused', { userId: input.userId, missionId: input.missionId, iterationId: iteration.id });
  }
  for (let attempt = 0; attempt < WRITE_ATTEMPTS && outcome === undefined; attempt++) {
    outcome = await writeOnce(context, input, await readBase(context, input));
  }
  if (outcome === undefined) {
    throw new ProjectionError('PROJECTION_WRITE_CONFLICT', 'the mission kept changing while its iteration was written', {
      details: { missionId: input.missionId, attempts: WRITE_ATTEMPTS },
    });
  }
  const result: WriteIterationResult = { iterationId: iteration.id, iteration, ...outcome };
  context.events.emit('iteration.written', {
    userId: input.userId,
    missionId: input.missionId,
    iterationId: iteration.id,
    duplicate: result.duplicate,
    nextRunAt: result.nextRunAt,
    nextRunAtWritten: result.nextRunAtWritten,
    steps: iteration.plan.length,
  });
  return result;
}

/**
 * The fast path's base: the claimed record with no unseen rows, stamped with the claim's database
 * time plus the whole milliseconds elapsed since its answer arrived on the monotonic clock (at most
 * the database's now, up to clock-rate drift; the write refuses a stamp ahead of it). A duplicate
 * row that the claimed record does not hold yet would be an unseen row: the write refuses it too.
 */
function claimedBase(claimed: ClaimedSnapshot): WriteBase {
  const stampMs = claimed.readAtMs + Math.floor(performance.now() - claimed.receivedAt);
  return { record: claimed.record, version: claimed.version, newer: [], duplicate: false, stamp: new Date(stampMs).toISOString(), stampMs };
}

/** The read path's base: `mana_ai.write_back_read`, the snapshot and its unapplied rows at the database's now. */
async function readBase(context: ProjectionContext, input: WriteIterationInput): Promise<WriteBase> {
  const rows = await context.sql<ReadRow[]>`
    SELECT op, data, field_meta, stamp, version, duplicate, stamp_ms
    FROM mana_ai.write_back_read(${input.userId}, ${input.missionId}, ${input.iteration.id})`;
  const [snapshot, ...newer] = rows;
  if (!snapshot) {
    throw new ProjectionError('PROJECTION_MISSION_NOT_FOUND', 'mission has no snapshot (deleted or never projected)', {
      details: { missionId: input.missionId },
    });
  }
  // The database's time at the read, truncated to the stamp's millisecond: one instant for the
  // field stamps, the cadence math and the token usage.
  return {
    record: snapshot.data as Record<string, unknown>,
    version: snapshot.version,
    newer,
    duplicate: snapshot.duplicate === true,
    stamp: snapshot.stamp,
    stampMs: Math.round(snapshot.stamp_ms ?? Date.parse(snapshot.stamp)),
  };
}

/** One merge and conditional write against `base`; undefined when the mission changed since. */
async function writeOnce(
  context: ProjectionContext,
  input: WriteIterationInput,
  base: WriteBase,
): Promise<Omit<WriteIterationResult, 'iterationId' | 'iteration'> | undefined> {
  const { iteration, actor } = input;
  // The snapshot may lag behind the log: its newer rows are merged first so the array we rewrite
  // includes a client's latest iteration edits (narrows B20 to truly concurrent writes), and a
  // nextRunAt the user set meanwhile is seen. The merge works on a copy: `base.record` (the claimed
  // snapshot on the fast path) stays as it was.
  const state = mergeStateFromSnapshot(input.missionId, base.record);
  for (const row of base.newer) {
    applyChange(state, { op: row.op ?? '', recordId: input.missionId, data: row.data, fieldMeta: row.field_meta, createdAt: row.stamp });
  }
  if (state.deleted || state.record === null) {
    throw new ProjectionError('PROJECTION_MISSION_NOT_FOUND', 'mission was deleted', { details: { missionId: input.missionId } });
  }
  const record = state.record;
  const iterations = Array.isArray(record.iterations) ? (record.iterations as MissionIteration[]) : [];
  const stored = typeof record.nextRunAt === 'string' ? record.nextRunAt : null;
  if (base.duplicate || iterations.some((existing) => existing?.id === iteration.id)) {
    // Final: the log only grows, so the iteration stays written.
    if (input.owner) {
      await context.sql`
        SELECT mana_ai.release_mission_leases(${input.owner}, ${JSON.stringify([{ user_id: input.userId, mission_id: input.missionId }])}::text::jsonb)`;
    }
    return { duplicate: true, nextRunAt: stored, nextRunAtWritten: false };
  }
  const { stamp, stampMs } = base;
  // Planned for `dueSlot`; a different nextRunAt now is a user's edit made while the mission ran.
  // A cron mission without one ran at the slot the runner derived (snapshotNextRunAt).
  const rescheduled = !awaitsFirstCronRun(record) && canonicalInstant(record.nextRunAt) !== canonicalInstant(input.dueSlot);
  const nextRunAt = rescheduled ? stored : nextRunAtAfterRun(record, stampMs, context.defaultTimeZone);
  const data: Record<string, unknown> = rescheduled ? { iterations: [...iterations, iteration] } : { iterations: [...iterations, iteration], nextRunAt };
  const fieldMeta: Record<string, string> = rescheduled ? { iterations: stamp } : { iterations: stamp, nextRunAt: stamp };
  // Every field of the row carries its stamp: the row's created_at plays no part in the merge.
  applyChange(state, { op: 'update', recordId: input.missionId, data, fieldMeta, createdAt: stamp });
  const merged = snapshotRecord(state)!;
  const tokens = input.tokenUsage && input.tokenUsage.tokens > 0 ? Math.round(input.tokenUsage.tokens) : 0;
  const [written] = await context.sql<{ written: boolean }[]>`
    SELECT mana_ai.write_back_write(
      ${input.userId}, ${input.missionId}, ${base.version}, ${base.newer.length}::int, ${JSON.stringify(merged)}::text::jsonb,
      ${canonicalInstant(merged.nextRunAt)}, ${JSON.stringify(data)}::text::jsonb, ${JSON.stringify(fieldMeta)}::text::jsonb,
      ${JSON.stringify(actor)}::text::jsonb, ${input.owner ?? null}::text, ${input.tokenUsage?.agentId ?? ''}, ${tokens}::int, ${stamp}
    ) AS written`;
  if (written?.written !== true) return undefined;
  return { duplicate: false, nextRunAt, nextRunAtWritten: !rescheduled };
}

import type { SqlTransaction } from '@mana-ai/core';
import { type ProjectionContext, MICROSECOND_STAMP, MILLISECOND_STAMP } from './context.js';
import type { FeedCursor, RefreshResult, RowSkipReason } from './events.js';
import {
  type BadRowReason,
  type ChangeRow,
  type MergeState,
  applyChange,
  createMergeState,
  mergeStateFromSnapshot,
  snapshotRecord,
} from './lww.js';
import { type LaneKey, syncLanes } from './lanes.js';
import { snapshotNextRunAt } from './write-back.js';
import { DUE_CHANNEL } from './signals.js';

/** Options of the snapshot refresh. */
export interface RefreshOptions {
  /** Feed rows per batch (and per transaction), 1..10000 (default 2000). */
  batchSize?: number;
  /** Stop after this many batches (default: drain the feed). */
  maxBatches?: number;
}

/** The advisory-lock key that serialises refreshes across instances ("mana" "snap"). */
export const REFRESH_LOCK_KEY = 0x6d616e61_736e6170n;
/** The name of the snapshot refresh's row in `mana_ai.projection_cursors`. */
export const SNAPSHOT_CURSOR = 'snapshots';

const MISSIONS = 'aiMissions';
const AGENTS = 'agents';

interface FeedRow {
  id: string;
  table_name: string;
  record_id: string;
  user_id: string;
  op: string;
  data: unknown;
  field_meta: unknown;
  stamp: string;
  position: string;
}

/** A row of `mana_ai.refresh_batch`: a feed row (`change`, or `applied` without data) or a stored snapshot or tombstone. */
type RefreshFeedRow = FeedRow & {
  kind: 'change' | 'applied' | 'snapshot' | 'tombstone';
  record: Record<string, unknown> | null;
  version: string | null;
  agent_id: string | null;
  lane_state: string | null;
};

interface RecordGroup {
  table: string;
  userId: string;
  recordId: string;
  rows: FeedRow[];
  /** Position of the last `applied` row of this record in the batch (its snapshot holds it), if any. */
  passedUpTo?: string;
}

interface BatchOutcome {
  rowsRead: number;
  rowsApplied: number;
  rowsAlreadyApplied: number;
  rowsIgnored: number;
  badRows: number;
  newSnapshots: number;
  updatedSnapshots: number;
  deletedSnapshots: number;
  users: Set<string>;
  cursor: FeedCursor | null;
}

interface StoredSnapshot {
  table_name: string;
  user_id: string;
  record_id: string;
  record: Record<string, unknown>;
  version: string;
  /**
   * What a claim lane reads of the record before this batch, as text: a mission's agent, `active`
   * and `next_run_at`; an agent's `deleted` and `max_concurrent`. Equal after the write = the lane
   * is unchanged.
   */
  lane_state: string;
  /** A mission's agent (its claim lane) before this batch; null for agents and missions without one. */
  agent_id: string | null;
}

/** A written snapshot's key and what its claim lane reads (see {@link StoredSnapshot.lane_state}). */
interface WrittenSnapshot {
  user_id: string;
  record_id: string;
  agent_id: string | null;
  lane_state: string;
}

interface SnapshotWrite {
  user_id: string;
  record_id: string;
  record: Record<string, unknown>;
  last_applied_at: string;
  next_run_at: string | null;
  version: string | null;
}

interface GroupMerge {
  /** The record to store; null when nothing could be applied. */
  record: Record<string, unknown> | null;
  /** Position of the delete's batch end when the record was deleted, else null. */
  deletedAt: string | null;
  lastPosition: string;
}

/** Counts a row the refresh could not (fully) apply and reports it (event and log) with ids only, never content. */
function reportBadRow(context: ProjectionContext, outcome: BatchOutcome, row: FeedRow, reason: RowSkipReason): void {
  outcome.badRows += 1;
  const skipped = { changeId: row.id, table: row.table_name, userId: row.user_id, recordId: row.record_id, reason };
  context.logger.warn(skipped, 'sync_changes row skipped');
  context.events.emit('row.skipped', skipped);
}

/**
 * Serialises one batch's snapshot writes once. Only when that fails (a record nested deeper than
 * `JSON.stringify` can go) are the records checked one by one: those records' rows are skipped as
 * `record-unserializable` and their snapshots stay as they were, so one record never holds the
 * cursor (and every other user) back. New and updated snapshots are counted from what is kept.
 */
function serializeWrites(
  context: ProjectionContext,
  outcome: BatchOutcome,
  groups: ReadonlyMap<string, RecordGroup>,
  table: string,
  writes: SnapshotWrite[],
): { writes: SnapshotWrite[]; json: string } {
  let kept = writes;
  let json: string;
  try {
    json = JSON.stringify(writes);
  } catch {
    kept = writes.filter((write) => {
      try {
        JSON.stringify(write.record);
        return true;
      } catch {
        for (const row of groups.get(groupKey(table, write.user_id, write.record_id))?.rows ?? []) {
          reportBadRow(context, outcome, row, 'record-unserializable');
        }
        return false;
      }
    });
    json = JSON.stringify(kept);
  }
  for (const write of kept) {
    if (write.version === null) outcome.newSnapshots += 1;
    else outcome.updatedSnapshots += 1;
  }
  return { writes: kept, json };
}

/** Merges one record's new rows onto its stored snapshot (counting applied, ignored and bad rows once). */
function mergeGroup(
  context: ProjectionContext,
  group: RecordGroup,
  stored: Record<string, unknown> | undefined,
  outcome: BatchOutcome | null,
): GroupMerge {
  const state: MergeState = stored ? mergeStateFromSnapshot(group.recordId, stored) : createMergeState();
  let lastPosition = '';
  for (const row of group.rows) {
    if (state.deleted) {
      if (outcome) outcome.rowsIgnored += 1;
      continue;
    }
    const change: ChangeRow = { op: row.op, recordId: row.record_id, data: row.data, fieldMeta: row.field_meta, createdAt: row.stamp };
    applyChange(
      state,
      change,
      outcome ? (_bad, reason: BadRowReason) => reportBadRow(context, outcome, row, reason) : undefined,
    );
    if (outcome) outcome.rowsApplied += 1;
    lastPosition = row.position;
  }
  const passed = group.passedUpTo ?? '';
  return {
    record: snapshotRecord(state),
    deletedAt: state.deleted ? lastPosition : null,
    lastPosition: passed > lastPosition ? passed : lastPosition,
  };
}

/**
 * Merges a mission again onto its current snapshot under a row lock after a concurrent change, in
 * its user's RLS scope (set for the rest of the refresh transaction, whose other statements are
 * definer functions); returns the claim lanes it touched (the mission's agent before and after).
 */
async function remergeLocked(context: ProjectionContext, tx: SqlTransaction, group: RecordGroup): Promise<LaneKey[]> {
  await tx`SELECT set_config('app.current_user_id', ${group.userId}, true)`;
  const [current] = await tx<{ record: Record<string, unknown>; agent_id: string | null }[]>`
    SELECT record, agent_id FROM mana_ai.mission_snapshots WHERE user_id = ${group.userId} AND mission_id = ${group.recordId}
    FOR UPDATE`;
  const lanes: LaneKey[] = [{ user_id: group.userId, agent_id: current?.agent_id ?? null }];
  const result = mergeGroup(context, group, current?.record, null);
  if (result.record === null) return lanes;
  const [written] = await tx<{ agent_id: string | null }[]>`
    INSERT INTO mana_ai.mission_snapshots (user_id, mission_id, record, last_applied_at, next_run_at, updated_at)
    VALUES (${group.userId}, ${group.recordId}, ${JSON.stringify(result.record)}::text::jsonb,
            ${result.lastPosition}::text::timestamptz,
            ${snapshotNextRunAt(result.record, result.lastPosition, context.defaultTimeZone)}::text::timestamptz, now())
    ON CONFLICT (user_id, mission_id) DO UPDATE SET
      record = EXCLUDED.record, last_applied_at = EXCLUDED.last_applied_at,
      next_run_at = EXCLUDED.next_run_at, updated_at = now()
    RETURNING agent_id`;
  lanes.push({ user_id: group.userId, agent_id: written?.agent_id ?? null });
  return lanes;
}

function groupKey(table: string, userId: string, recordId: string): string {
  return `${table}\u0000${userId}\u0000${recordId}`;
}

/**
 * Brings `mana_ai.mission_snapshots` and `agent_snapshots` up to date with the log: reads the
 * change feed after the global `(created_at, id)` cursor in batches, merges each record's new rows
 * onto its stored snapshot, writes snapshots, tombstones and the cursor in one transaction per batch.
 * Cost is proportional to the new rows; a deleted record is never replayed again; the runner's own
 * rows whose snapshot already holds them (merged by their write-back) are passed without reading
 * their data (`rowsAlreadyApplied`); rows without a user id are skipped (`row.skipped`). Only one
 * instance refreshes at a time (`pg_try_advisory_xact_lock`); the others return `skipped`. A refresh
 * that applied rows ends with `NOTIFY mana_ai_due` in its last batch's transaction, so instances that
 * skipped it know to claim.
 */
export async function refreshSnapshots(context: ProjectionContext, options: RefreshOptions = {}): Promise<RefreshResult> {
  const batchSize = Math.max(1, Math.min(10_000, Math.floor(options.batchSize ?? 2000)));
  const maxBatches = options.maxBatches ?? Number.POSITIVE_INFINITY;
  const startedAt = performance.now();
  const result: RefreshResult = {
    skipped: false,
    completed: false,
    batches: 0,
    rowsRead: 0,
    rowsApplied: 0,
    rowsAlreadyApplied: 0,
    rowsIgnored: 0,
    badRows: 0,
    newSnapshots: 0,
    updatedSnapshots: 0,
    deletedSnapshots: 0,
    usersProcessed: 0,
    cursor: null,
    durationMs: 0,
  };
  const users = new Set<string>();
  while (true) {
    if (result.batches >= maxBatches) {
      result.reason = 'max-batches';
      break;
    }
    // The last batch (short, empty after applied rows, or the last allowed) tells the others to claim.
    const notify = { appliedBefore: result.rowsApplied > 0, lastAllowed: result.batches + 1 >= maxBatches };
    const outcome = await context.sql.begin((tx) => refreshBatch(context, tx, batchSize, notify));
    if (outcome === null) {
      if (result.batches === 0) result.skipped = true;
      result.reason = 'locked';
      break;
    }
    if (outcome.rowsRead === 0) {
      result.completed = true;
      break;
    }
    result.batches += 1;
    result.rowsRead += outcome.rowsRead;
    result.rowsApplied += outcome.rowsApplied;
    result.rowsAlreadyApplied += outcome.rowsAlreadyApplied;
    result.rowsIgnored += outcome.rowsIgnored;
    result.badRows += outcome.badRows;
    result.newSnapshots += outcome.newSnapshots;
    result.updatedSnapshots += outcome.updatedSnapshots;
    result.deletedSnapshots += outcome.deletedSnapshots;
    for (const user of outcome.users) users.add(user);
    result.cursor = outcome.cursor;
    if (outcome.cursor) {
      context.events.emit('refresh.progress', {
        batch: result.batches,
        rowsRead: result.rowsRead,
        rowsApplied: result.rowsApplied,
        cursor: outcome.cursor,
      });
    }
    if (outcome.rowsRead < batchSize) {
      result.completed = true;
      break;
    }
  }
  result.usersProcessed = users.size;
  result.durationMs = Math.max(0, performance.now() - startedAt);
  context.events.emit('refresh.done', result);
  context.logger.debug(
    { rowsRead: result.rowsRead, batches: result.batches, skipped: result.skipped, durationMs: result.durationMs },
    'snapshot refresh finished',
  );
  return result;
}

async function refreshBatch(
  context: ProjectionContext,
  tx: SqlTransaction,
  batchSize: number,
  notify: { appliedBefore: boolean; lastAllowed: boolean },
): Promise<BatchOutcome | null> {
  const [lock] = await tx<{ locked: boolean }[]>`SELECT pg_try_advisory_xact_lock(${REFRESH_LOCK_KEY.toString()}::bigint) AS locked`;
  if (!lock?.locked) return null;
  // One definer function returns the feed batch and the stored snapshots and tombstones of the
  // records in it, nothing else (migration 0009). The runner's own rows that their snapshot
  // already holds (the write-back merged them in its transaction) come as 'applied', without data.
  const batch = await tx<RefreshFeedRow[]>`
    SELECT f.kind, f.id::text AS id, f.table_name, f.record_id, f.user_id, f.op, f.data, f.field_meta,
           to_char(f.created_at AT TIME ZONE 'UTC', ${MILLISECOND_STAMP}) AS stamp,
           to_char(f.created_at AT TIME ZONE 'UTC', ${MICROSECOND_STAMP}) AS position,
           f.record, f.version, f.agent_id, f.lane_state
    FROM mana_ai.refresh_batch(
      (SELECT c.created_at FROM mana_ai.projection_cursors c WHERE c.name = ${SNAPSHOT_CURSOR}),
      (SELECT c.id FROM mana_ai.projection_cursors c WHERE c.name = ${SNAPSHOT_CURSOR}),
      ${batchSize}::integer) AS f`;
  const rows: RefreshFeedRow[] = [];
  const stored: RefreshFeedRow[] = [];
  let alreadyApplied = 0;
  for (const row of batch) {
    if (row.kind === 'change' || row.kind === 'applied') rows.push(row);
    else stored.push(row);
    if (row.kind === 'applied') alreadyApplied += 1;
  }
  const outcome: BatchOutcome = {
    rowsRead: rows.length,
    rowsApplied: 0,
    rowsAlreadyApplied: alreadyApplied,
    rowsIgnored: 0,
    badRows: 0,
    newSnapshots: 0,
    updatedSnapshots: 0,
    deletedSnapshots: 0,
    users: new Set(),
    cursor: null,
  };
  if (rows.length === 0) {
    if (notify.appliedBefore) await tx`SELECT pg_notify(${DUE_CHANNEL}, '')`;
    return outcome;
  }

  const groups = new Map<string, RecordGroup>();
  for (const row of rows) {
    if (row.kind === 'applied') continue;
    // Not a user: its snapshot could be claimed but never written back (RLS, withUser).
    if (row.user_id === '') {
      reportBadRow(context, outcome, row, 'empty-user-id');
      continue;
    }
    const key = groupKey(row.table_name, row.user_id, row.record_id);
    let group = groups.get(key);
    if (!group) {
      group = { table: row.table_name, userId: row.user_id, recordId: row.record_id, rows: [] };
      groups.set(key, group);
    }
    group.rows.push(row);
    outcome.users.add(row.user_id);
  }
  // The snapshot is written with last_applied_at past the applied rows of its record too (the
  // function moves it for records with applied rows only).
  for (const row of rows) {
    const group = row.kind === 'applied' ? groups.get(groupKey(row.table_name, row.user_id, row.record_id)) : undefined;
    if (group) group.passedUpTo = row.position;
  }

  // No row locks while merging: a write-back that changes a mission in between is detected by its
  // row version (xmin) and that mission is merged again under a lock (rare, and cheap to redo).
  const existing = new Map<string, StoredSnapshot>();
  const dead = new Set<string>();
  for (const snapshot of stored) {
    const key = groupKey(snapshot.table_name, snapshot.user_id, snapshot.record_id);
    if (snapshot.kind === 'tombstone') dead.add(key);
    else existing.set(key, snapshot as StoredSnapshot);
  }

  const missionWrites: SnapshotWrite[] = [];
  const agentWrites: SnapshotWrite[] = [];
  const deletions: { table_name: string; user_id: string; record_id: string; deleted_at: string }[] = [];

  for (const [key, group] of groups) {
    if (dead.has(key)) {
      outcome.rowsIgnored += group.rows.length;
      continue;
    }
    const snapshot = existing.get(key);
    const result = mergeGroup(context, group, snapshot?.record, outcome);
    if (result.deletedAt !== null) {
      deletions.push({ table_name: group.table, user_id: group.userId, record_id: group.recordId, deleted_at: result.deletedAt });
      if (snapshot) outcome.deletedSnapshots += 1;
      continue;
    }
    if (result.record === null) continue;
    const write: SnapshotWrite = {
      user_id: group.userId,
      record_id: group.recordId,
      record: result.record,
      last_applied_at: result.lastPosition,
      next_run_at: group.table === MISSIONS ? snapshotNextRunAt(result.record, result.lastPosition, context.defaultTimeZone) : null,
      version: snapshot?.version ?? null,
    };
    (group.table === MISSIONS ? missionWrites : agentWrites).push(write);
  }

  const missions = serializeWrites(context, outcome, groups, MISSIONS, missionWrites);
  const agents = serializeWrites(context, outcome, groups, AGENTS, agentWrites);
  // Every claim lane whose missions or agent this batch changed as the lane sees them: a mission's
  // agent before and after, a changed agent's own. Edits of titles, objectives, iterations… touch none.
  const lanes: LaneKey[] = [];
  const laneChanged = (table: string, written: WrittenSnapshot): boolean =>
    existing.get(groupKey(table, written.user_id, written.record_id))?.lane_state !== written.lane_state;
  if (missions.writes.length + agents.writes.length + deletions.length > 0) {
    const written = await tx<(WrittenSnapshot & { kind: 'mission' | 'agent' | 'deleted' })[]>`
      SELECT kind, user_id, record_id, agent_id, lane_state
      FROM mana_ai.refresh_write_snapshots(${missions.json}::text::jsonb, ${agents.json}::text::jsonb, ${JSON.stringify(deletions)}::text::jsonb)`;
    const done = new Set<string>();
    for (const row of written) {
      if (row.kind === 'mission') {
        done.add(groupKey(MISSIONS, row.user_id, row.record_id));
        if (!laneChanged(MISSIONS, row)) continue;
        const before = existing.get(groupKey(MISSIONS, row.user_id, row.record_id))?.agent_id ?? null;
        lanes.push({ user_id: row.user_id, agent_id: before }, { user_id: row.user_id, agent_id: row.agent_id });
      } else if (row.kind === 'agent') {
        if (laneChanged(AGENTS, row)) lanes.push({ user_id: row.user_id, agent_id: row.record_id });
      } else {
        lanes.push({ user_id: row.user_id, agent_id: row.agent_id });
      }
    }
    for (const deletion of deletions) {
      if (deletion.table_name === AGENTS) lanes.push({ user_id: deletion.user_id, agent_id: deletion.record_id });
    }
    // Missions a write-back changed since they were read: merged again, each under its user's scope.
    for (const write of missions.writes) {
      const key = groupKey(MISSIONS, write.user_id, write.record_id);
      if (!done.has(key)) lanes.push(...(await remergeLocked(context, tx, groups.get(key)!)));
    }
  }
  // Last, after every snapshot write: lanes are locked after missions, never before (no deadlock
  // with a write-back that holds a mission and waits for its lane).
  await syncLanes(tx, lanes);
  const last = rows[rows.length - 1]!;
  await tx`
    INSERT INTO mana_ai.projection_cursors (name, created_at, id, updated_at)
    VALUES (${SNAPSHOT_CURSOR}, ${last.position}::text::timestamptz, ${last.id}::uuid, now())
    ON CONFLICT (name) DO UPDATE SET created_at = EXCLUDED.created_at, id = EXCLUDED.id, updated_at = now()`;
  outcome.cursor = { createdAt: last.position, id: last.id };
  if ((rows.length < batchSize || notify.lastAllowed) && (notify.appliedBefore || outcome.rowsApplied > 0)) {
    await tx`SELECT pg_notify(${DUE_CHANNEL}, '')`;
  }
  return outcome;
}

/**
 * Seconds the change feed is held back: how long ago the oldest transaction still open in the
 * database began (0 when none). The refresh reads no row stamped after that start, so a session
 * left open for minutes (a backup, an idle psql) stalls new missions for as long. Only the duration
 * is returned, never who holds the transaction.
 */
export async function feedLagSeconds(context: ProjectionContext): Promise<number> {
  const [row] = await context.sql<{ lag: number | string | null }[]>`SELECT mana_ai.change_feed_lag_seconds() AS lag`;
  const lag = Number(row?.lag ?? 0);
  return Number.isFinite(lag) && lag > 0 ? lag : 0;
}

/**
 * True when the change feed holds rows after the snapshot cursor that a refresh would read now:
 * one call of the `SECURITY DEFINER` probe `mana_ai.change_feed_pending` (an indexed lookup). The
 * cheap poll for a runner whose database has no change trigger.
 */
export async function hasPendingChanges(context: ProjectionContext): Promise<boolean> {
  const [row] = await context.sql<{ pending: boolean }[]>`
    SELECT mana_ai.change_feed_pending(
      (SELECT c.created_at FROM mana_ai.projection_cursors c WHERE c.name = ${SNAPSHOT_CURSOR}),
      (SELECT c.id FROM mana_ai.projection_cursors c WHERE c.name = ${SNAPSHOT_CURSOR})) AS pending`;
  return row?.pending === true;
}

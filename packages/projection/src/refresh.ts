import type { TransactionSql } from 'postgres';
import { type ProjectionContext, MICROSECOND_STAMP, MILLISECOND_STAMP } from './context.js';
import type { FeedCursor, RefreshResult } from './events.js';
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

interface RecordGroup {
  table: string;
  userId: string;
  recordId: string;
  rows: FeedRow[];
}

interface BatchOutcome {
  rowsRead: number;
  rowsApplied: number;
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

/** Counts a row the merge could not (fully) apply and reports it with ids only, never content. */
function reportBadRow(context: ProjectionContext, outcome: BatchOutcome, row: FeedRow, reason: BadRowReason): void {
  outcome.badRows += 1;
  context.events.emit('row.skipped', { changeId: row.id, table: row.table_name, userId: row.user_id, recordId: row.record_id, reason });
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
  return { record: snapshotRecord(state), deletedAt: state.deleted ? lastPosition : null, lastPosition };
}

/**
 * Merges a mission again onto its current snapshot under a row lock after a concurrent change;
 * returns the claim lanes it touched (the mission's agent before and after).
 */
async function remergeLocked(context: ProjectionContext, tx: TransactionSql, group: RecordGroup): Promise<LaneKey[]> {
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
 * Cost is proportional to the new rows; a deleted record is never replayed again. Only one
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
  tx: TransactionSql,
  batchSize: number,
  notify: { appliedBefore: boolean; lastAllowed: boolean },
): Promise<BatchOutcome | null> {
  const [lock] = await tx<{ locked: boolean }[]>`SELECT pg_try_advisory_xact_lock(${REFRESH_LOCK_KEY.toString()}::bigint) AS locked`;
  if (!lock?.locked) return null;
  const rows = await tx<FeedRow[]>`
    SELECT f.id::text AS id, f.table_name, f.record_id, f.user_id, f.op, f.data, f.field_meta,
           to_char(f.created_at AT TIME ZONE 'UTC', ${MILLISECOND_STAMP}) AS stamp,
           to_char(f.created_at AT TIME ZONE 'UTC', ${MICROSECOND_STAMP}) AS position
    FROM mana_ai.change_feed(
      (SELECT c.created_at FROM mana_ai.projection_cursors c WHERE c.name = ${SNAPSHOT_CURSOR}),
      (SELECT c.id FROM mana_ai.projection_cursors c WHERE c.name = ${SNAPSHOT_CURSOR}),
      ${batchSize}::integer) AS f`;
  const outcome: BatchOutcome = {
    rowsRead: rows.length,
    rowsApplied: 0,
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
    const key = groupKey(row.table_name, row.user_id, row.record_id);
    let group = groups.get(key);
    if (!group) {
      group = { table: row.table_name, userId: row.user_id, recordId: row.record_id, rows: [] };
      groups.set(key, group);
    }
    group.rows.push(row);
    outcome.users.add(row.user_id);
  }
  const keys = [...groups.values()].map((group) => ({ table_name: group.table, user_id: group.userId, record_id: group.recordId }));
  const keysJson = JSON.stringify(keys);

  // No row locks while merging: a write-back that changes a mission in between is detected by its
  // row version (xmin) and that mission is merged again under a lock (rare, and cheap to redo).
  const stored = await tx<StoredSnapshot[]>`
    SELECT 'aiMissions' AS table_name, s.user_id, s.mission_id AS record_id, s.record, s.xmin::text AS version, s.agent_id,
           json_build_array(s.agent_id, s.active, s.next_run_at)::text AS lane_state
    FROM mana_ai.mission_snapshots s
    WHERE (s.user_id, s.mission_id) IN (
      SELECT k.user_id, k.record_id FROM jsonb_to_recordset(${keysJson}::text::jsonb) AS k(table_name text, user_id text, record_id text)
      WHERE k.table_name = ${MISSIONS})`;
  const storedAgents = await tx<StoredSnapshot[]>`
    SELECT 'agents' AS table_name, a.user_id, a.agent_id AS record_id, a.record, a.xmin::text AS version, NULL::text AS agent_id,
           json_build_array(a.deleted, a.max_concurrent)::text AS lane_state
    FROM mana_ai.agent_snapshots a
    WHERE (a.user_id, a.agent_id) IN (
      SELECT k.user_id, k.record_id FROM jsonb_to_recordset(${keysJson}::text::jsonb) AS k(table_name text, user_id text, record_id text)
      WHERE k.table_name = ${AGENTS})`;
  const tombstones = await tx<{ table_name: string; user_id: string; record_id: string }[]>`
    SELECT t.table_name, t.user_id, t.record_id
    FROM mana_ai.snapshot_tombstones t
    JOIN jsonb_to_recordset(${keysJson}::text::jsonb) AS k(table_name text, user_id text, record_id text)
      ON t.table_name = k.table_name AND t.user_id = k.user_id AND t.record_id = k.record_id`;

  const existing = new Map<string, StoredSnapshot>();
  for (const snapshot of [...stored, ...storedAgents]) {
    existing.set(groupKey(snapshot.table_name, snapshot.user_id, snapshot.record_id), snapshot);
  }
  const dead = new Set(tombstones.map((t) => groupKey(t.table_name, t.user_id, t.record_id)));

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
  if (missions.writes.length > 0) {
    const writesJson = missions.json;
    const updated = await tx<WrittenSnapshot[]>`
      UPDATE mana_ai.mission_snapshots s SET
        record = u.record, last_applied_at = u.last_applied_at::timestamptz,
        next_run_at = u.next_run_at::timestamptz, updated_at = now()
      FROM jsonb_to_recordset(${writesJson}::text::jsonb)
        AS u(user_id text, record_id text, record jsonb, last_applied_at text, next_run_at text, version text)
      WHERE u.version IS NOT NULL AND s.user_id = u.user_id AND s.mission_id = u.record_id AND s.xmin::text = u.version
      RETURNING s.user_id, s.mission_id AS record_id, s.agent_id, json_build_array(s.agent_id, s.active, s.next_run_at)::text AS lane_state`;
    const inserted = await tx<WrittenSnapshot[]>`
      INSERT INTO mana_ai.mission_snapshots (user_id, mission_id, record, last_applied_at, next_run_at, updated_at)
      SELECT u.user_id, u.record_id, u.record, u.last_applied_at::timestamptz, u.next_run_at::timestamptz, now()
      FROM jsonb_to_recordset(${writesJson}::text::jsonb)
        AS u(user_id text, record_id text, record jsonb, last_applied_at text, next_run_at text, version text)
      WHERE u.version IS NULL
      ON CONFLICT (user_id, mission_id) DO NOTHING
      RETURNING user_id, mission_id AS record_id, agent_id, json_build_array(agent_id, active, next_run_at)::text AS lane_state`;
    for (const row of [...updated, ...inserted]) {
      if (!laneChanged(MISSIONS, row)) continue;
      const before = existing.get(groupKey(MISSIONS, row.user_id, row.record_id))?.agent_id ?? null;
      lanes.push({ user_id: row.user_id, agent_id: before }, { user_id: row.user_id, agent_id: row.agent_id });
    }
    if (updated.length + inserted.length < missions.writes.length) {
      const done = new Set([...updated, ...inserted].map((row) => groupKey(MISSIONS, row.user_id, row.record_id)));
      for (const write of missions.writes) {
        const key = groupKey(MISSIONS, write.user_id, write.record_id);
        if (!done.has(key)) lanes.push(...(await remergeLocked(context, tx, groups.get(key)!)));
      }
    }
  }
  if (agents.writes.length > 0) {
    // Only the refresh writes agent snapshots, and it holds the lock: a plain upsert is safe.
    const written = await tx<WrittenSnapshot[]>`
      INSERT INTO mana_ai.agent_snapshots (user_id, agent_id, record, last_applied_at, updated_at)
      SELECT u.user_id, u.record_id, u.record, u.last_applied_at::timestamptz, now()
      FROM jsonb_to_recordset(${agents.json}::text::jsonb)
        AS u(user_id text, record_id text, record jsonb, last_applied_at text)
      ON CONFLICT (user_id, agent_id) DO UPDATE SET
        record = EXCLUDED.record, last_applied_at = EXCLUDED.last_applied_at, updated_at = now()
      RETURNING user_id, agent_id AS record_id, NULL::text AS agent_id, json_build_array(deleted, max_concurrent)::text AS lane_state`;
    for (const row of written) {
      if (laneChanged(AGENTS, row)) lanes.push({ user_id: row.user_id, agent_id: row.record_id });
    }
  }
  if (deletions.length > 0) {
    const deletionsJson = JSON.stringify(deletions);
    const deletedMissions = await tx<LaneKey[]>`
      DELETE FROM mana_ai.mission_snapshots s
      USING jsonb_to_recordset(${deletionsJson}::text::jsonb) AS d(table_name text, user_id text, record_id text)
      WHERE d.table_name = ${MISSIONS} AND s.user_id = d.user_id AND s.mission_id = d.record_id
      RETURNING s.user_id, s.agent_id`;
    lanes.push(...deletedMissions);
    for (const deletion of deletions) {
      if (deletion.table_name === AGENTS) lanes.push({ user_id: deletion.user_id, agent_id: deletion.record_id });
    }
    await tx`
      DELETE FROM mana_ai.agent_snapshots s
      USING jsonb_to_recordset(${deletionsJson}::text::jsonb) AS d(table_name text, user_id text, record_id text)
      WHERE d.table_name = ${AGENTS} AND s.user_id = d.user_id AND s.agent_id = d.record_id`;
    await tx`
      INSERT INTO mana_ai.snapshot_tombstones (table_name, user_id, record_id, deleted_at)
      SELECT d.table_name, d.user_id, d.record_id, d.deleted_at::timestamptz
      FROM jsonb_to_recordset(${deletionsJson}::text::jsonb) AS d(table_name text, user_id text, record_id text, deleted_at text)
      ON CONFLICT DO NOTHING`;
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

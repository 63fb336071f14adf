import type { BadRowReason } from './lww.js';
import type { MalformedEntry } from './records.js';

/** A position in the log: `created_at` (UTC, microseconds) and the row id. */
export interface FeedCursor {
  /** `created_at` as `YYYY-MM-DDTHH:mm:ss.ssssssZ`, full precision. */
  createdAt: string;
  id: string;
}

/** Payload of `refresh.progress`: emitted after every committed batch. */
export interface RefreshProgressEvent {
  batch: number;
  /** Rows read so far in this refresh. */
  rowsRead: number;
  /** Rows merged into snapshots so far in this refresh. */
  rowsApplied: number;
  cursor: FeedCursor;
}

/** What one call of `refresh()` did (also the payload of `refresh.done`). */
export interface RefreshResult {
  /** True when another instance held the refresh lock and nothing was done. */
  skipped: boolean;
  /** Why it was skipped or stopped early. */
  reason?: 'locked' | 'max-batches';
  /** True when the feed was drained up to its horizon. */
  completed: boolean;
  batches: number;
  /** Feed rows the cursor passed, the runner's own already-applied ones included. */
  rowsRead: number;
  /** Rows merged into snapshots. */
  rowsApplied: number;
  /**
   * Rows the runner itself wrote whose mission snapshot already held them (its write-back merged the
   * row in the same transaction): passed without reading their data and not merged again.
   */
  rowsAlreadyApplied: number;
  /** Rows of tombstoned records (never replayed) and rows after a delete in the same batch. */
  rowsIgnored: number;
  badRows: number;
  newSnapshots: number;
  updatedSnapshots: number;
  deletedSnapshots: number;
  usersProcessed: number;
  cursor: FeedCursor | null;
  durationMs: number;
}

/**
 * Why a row was skipped: a merge reason, or `empty-user-id` — a row whose `user_id` is empty belongs
 * to no user and is never projected (no snapshot, never claimed).
 */
export type RowSkipReason = BadRowReason | 'empty-user-id';

/** Payload of `row.skipped`: a row that could not be (fully) applied. Ids only, never content. */
export interface RowSkippedEvent {
  changeId: string;
  table: string;
  userId: string;
  recordId: string;
  reason: RowSkipReason;
}

/**
 * Payload of `entry.skipped`: an entry of a claimed mission's `inputs` or `iterations` left out as
 * malformed (the mission runs without it). Ids, positions and key names only, never content.
 */
export interface EntrySkippedEvent extends MalformedEntry {
  userId: string;
  missionId: string;
}

/** Payload of `missions.claimed`. */
export interface MissionsClaimedEvent {
  owner: string;
  limit: number;
  claimed: number;
  /** Wall time of the claim statements (all attempts), in ms. */
  durationMs: number;
}

/** Payload of `missions.renewed`: a lease heartbeat; `renewed < requested` means leases were lost. */
export interface MissionsRenewedEvent {
  owner: string;
  requested: number;
  renewed: number;
}

/** Payload of `missions.released`. */
export interface MissionsReleasedEvent {
  owner: string;
  released: number;
}

/** Payload of `iteration.written`. */
export interface IterationWrittenEvent {
  userId: string;
  missionId: string;
  iterationId: string;
  /** True when the iteration already existed (a retried write) and nothing new was inserted. */
  duplicate: boolean;
  /** The mission's `nextRunAt` after the write. */
  nextRunAt: string | null;
  /** False when the row left `nextRunAt` alone (a duplicate, or a user's edit made while the mission ran). */
  nextRunAtWritten: boolean;
  steps: number;
}

/**
 * Payload of `write-back.fast-refused`: the first write of a claim, from the snapshot its claim read,
 * was refused (the mission changed since the claim, or the stamp estimate was ahead of the
 * database's now) and the write-back falls back to reading the mission. Ids only.
 */
export interface WriteBackFastRefusedEvent {
  userId: string;
  missionId: string;
  iterationId: string;
}

/** Every event the projection emits, by name. */
export interface ProjectionEvents {
  'refresh.progress': RefreshProgressEvent;
  'refresh.done': RefreshResult;
  'row.skipped': RowSkippedEvent;
  'entry.skipped': EntrySkippedEvent;
  'missions.claimed': MissionsClaimedEvent;
  'missions.released': MissionsReleasedEvent;
  'missions.renewed': MissionsRenewedEvent;
  'iteration.written': IterationWrittenEvent;
  'write-back.fast-refused': WriteBackFastRefusedEvent;
}

// The projection's slice of the shared bus (see ManaAiEvents in @mana-ai/core).
declare module '@mana-ai/core' {
  interface ManaAiEvents extends ProjectionEvents {}
}

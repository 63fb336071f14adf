/**
 * Field-level last-writer-wins replay of `sync_changes` rows (docs/wire-contract.md#last-writer-wins-replay). Pure and browser-safe:
 * no I/O, no Node built-ins, no dates parsed — stamps are compared as strings, exactly like the
 * webapp does.
 */

/** One `sync_changes` row as the merge reads it. */
export interface ChangeRow {
  /** `insert`, `update` or `delete`; anything else is skipped as a bad row. */
  op: string;
  /** `sync_changes.record_id`. */
  recordId: string;
  /** `sync_changes.data`: an object of field values (or null). */
  data: unknown;
  /** `sync_changes.field_meta`: `{ field: ISO }` (or null). */
  fieldMeta: unknown;
  /**
   * `created_at` rendered like `Date.prototype.toISOString()` (UTC, milliseconds, `Z`): the stamp of
   * every field the row carries without a `field_meta` entry.
   */
  createdAt: string;
}

/**
 * Which replay variant: `mission` (docs/wire-contract.md#last-writer-wins-replay, a truthy `deletedAt` keeps the record), `agent` (docs/wire-contract.md#last-writer-wins-replay, a
 * truthy `deletedAt` yields null) or `record` (docs/wire-contract.md#last-writer-wins-replay, like `agent` and without `__fieldMeta`).
 */
export type MergeVariant = 'mission' | 'agent' | 'record';

/** Why a row was not (fully) applied. */
export type BadRowReason =
  | 'unknown-op'
  | 'data-not-object'
  | 'field-meta-not-object'
  | 'stamp-not-string'
  /** The merged record cannot be stored (e.g. nested deeper than JSON serialisation allows). */
  | 'record-unserializable';

/** Called for a row the merge skips or partly ignores. */
export type BadRowListener = (row: ChangeRow, reason: BadRowReason) => void;

/** The running state of one record's replay; feed rows with {@link applyChange}. */
export interface MergeState {
  /** The merged record so far; null before the first row and after a delete. */
  record: Record<string, unknown> | null;
  /** The winning stamp of every field that has one. */
  fieldMeta: Record<string, string>;
  /** True once a `delete` row was seen: terminal, later rows are ignored. */
  deleted: boolean;
}

/** The key under which snapshots keep their field stamps (docs/wire-contract.md#the-mana_ai-schema). */
export const FIELD_META_KEY = '__fieldMeta';

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An empty merge state. */
export function createMergeState(): MergeState {
  return { record: null, fieldMeta: {}, deleted: false };
}

/**
 * The merge state that continues from a stored snapshot record (the synthetic first row of
 * docs/wire-contract.md#last-writer-wins-replay): the record is `{ id, ...stored }` and its `__fieldMeta` seeds the stamps.
 */
export function mergeStateFromSnapshot(recordId: string, stored: Record<string, unknown>): MergeState {
  const fieldMeta: Record<string, string> = {};
  const storedMeta = stored[FIELD_META_KEY];
  if (isPlainObject(storedMeta)) {
    for (const key of Object.keys(storedMeta)) {
      const stamp = storedMeta[key];
      if (typeof stamp === 'string') fieldMeta[key] = stamp;
    }
  }
  return { record: { id: recordId, ...stored }, fieldMeta, deleted: false };
}

/**
 * Applies one row to `state` (mutating it) with the rules of docs/wire-contract.md#last-writer-wins-replay: a delete is terminal;
 * the first row is taken whole; later rows win a field when their stamp (`field_meta[field]`, else
 * `createdAt`) is `>=` the current one as a string — ties go to the newer row.
 */
export function applyChange(state: MergeState, row: ChangeRow, onBadRow?: BadRowListener): MergeState {
  if (state.deleted) return state;
  const op = row.op;
  if (op === 'delete') {
    state.record = null;
    state.fieldMeta = {};
    state.deleted = true;
    return state;
  }
  if (op !== 'insert' && op !== 'update') {
    onBadRow?.(row, 'unknown-op');
    return state;
  }
  const data = row.data;
  if (data !== null && data !== undefined && !isPlainObject(data)) {
    onBadRow?.(row, 'data-not-object');
    return state;
  }
  let rowMeta: Record<string, unknown> | undefined;
  if (isPlainObject(row.fieldMeta)) rowMeta = row.fieldMeta;
  else if (row.fieldMeta !== null && row.fieldMeta !== undefined) onBadRow?.(row, 'field-meta-not-object');

  if (state.record === null) {
    state.record = data ? { id: row.recordId, ...data } : { id: row.recordId };
    const fieldMeta: Record<string, string> = {};
    if (rowMeta) {
      for (const key of Object.keys(rowMeta)) {
        const stamp = rowMeta[key];
        if (typeof stamp === 'string') fieldMeta[key] = stamp;
        else onBadRow?.(row, 'stamp-not-string');
      }
    }
    state.fieldMeta = fieldMeta;
    return state;
  }
  if (!data) return state;
  const record = state.record;
  const fieldMeta = state.fieldMeta;
  const fallback = row.createdAt;
  for (const key of Object.keys(data)) {
    let stamp: unknown = rowMeta?.[key];
    if (stamp === undefined || stamp === null) stamp = fallback;
    else if (typeof stamp !== 'string') {
      onBadRow?.(row, 'stamp-not-string');
      stamp = fallback;
    }
    const current = fieldMeta[key];
    if (current === undefined || (stamp as string) >= current) {
      record[key] = data[key];
      fieldMeta[key] = stamp as string;
    }
  }
  return state;
}

/**
 * The record a finished replay yields for `variant` (docs/wire-contract.md#last-writer-wins-replay steps 5–6): null after a delete;
 * for `agent` and `record` also null when `deletedAt` is truthy; `mission` and `agent` carry their
 * stamps under `__fieldMeta`. The returned object is a fresh copy.
 */
export function finishMerge(state: MergeState, variant: MergeVariant): Record<string, unknown> | null {
  const record = state.record;
  if (record === null) return null;
  if (variant !== 'mission' && record.deletedAt) return null;
  if (variant === 'record') {
    const { [FIELD_META_KEY]: _ignored, ...rest } = record;
    return rest;
  }
  return { ...record, [FIELD_META_KEY]: { ...state.fieldMeta } };
}

/**
 * The record stored in a snapshot table: the merged fields plus `__fieldMeta`, whatever the
 * variant (soft-deleted agents keep their state so a later change can still be merged onto it).
 * Null after a delete.
 */
export function snapshotRecord(state: MergeState): Record<string, unknown> | null {
  if (state.record === null) return null;
  return { ...state.record, [FIELD_META_KEY]: { ...state.fieldMeta } };
}

/** Replays `rows` (ordered oldest first) from scratch and returns the record of `variant`, or null. */
export function mergeChanges(
  rows: Iterable<ChangeRow>,
  variant: MergeVariant,
  onBadRow?: BadRowListener,
): Record<string, unknown> | null {
  const state = createMergeState();
  for (const row of rows) {
    applyChange(state, row, onBadRow);
    if (state.deleted) break;
  }
  return finishMerge(state, variant);
}

// The browser-safe entry point `@mana-ai/projection/merge`: the pure LWW merge without the
// Postgres-backed projection, so its types need neither postgres.js nor Node's.
export {
  type BadRowListener,
  type BadRowReason,
  type ChangeRow,
  FIELD_META_KEY,
  type MergeState,
  type MergeVariant,
  applyChange,
  createMergeState,
  finishMerge,
  mergeChanges,
  mergeStateFromSnapshot,
  snapshotRecord,
} from './lww.js';

/**
 * One idempotent schema migration owned by a package. `sql` may hold several statements and
 * must be safe to run again on a database that already has it.
 */
export interface Migration {
  /** Stable id, `<package>/<NNNN_name>`, e.g. `projection/0001_mana_ai_schema`. */
  readonly id: string;
  /** The SQL text (multi-statement). */
  readonly sql: string;
}

/**
 * One idempotent schema migration owned by a package. `sql` may hold several statements and
 * must be safe to run again on a database that already has it.
 */
export interface Migration {
  /** Stable id, `<package>/<NNNN_name>`, e.g. `projection/0001_mana_ai_schema`. */
  readonly id: string;
  /** The SQL text (multi-statement). */
  readonly sql: string;
  /**
   * Earlier texts of this migration that differ from a later one in comments only, by checksum
   * (SHA-256, lowercase hex, of the UTF-8 text): a database that recorded `previous` has this
   * migration as long as `sql`'s checksum is still `current`. A later change to `sql` voids the
   * entry, so a modified migration is reported as changed again.
   */
  readonly previousChecksums?: readonly MigrationRewrite[];
}

/** An earlier text of a migration (`previous`) equivalent to the text whose checksum is `current`. */
export interface MigrationRewrite {
  readonly previous: string;
  readonly current: string;
}

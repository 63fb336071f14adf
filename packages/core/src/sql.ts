/**
 * A value the packages interpolate into a query: sent as a bound parameter, never spliced into the
 * SQL text. Arrays are sent as PostgreSQL arrays.
 */
export type SqlValue = null | boolean | number | string | Date | Uint8Array | readonly SqlValue[];

/** A result row as the driver returns it: column name → parsed value. */
export type SqlRow = Record<string, unknown>;

/** The rows of a query (typed by the caller) and `count`, the number of rows the statement affected or returned. */
export type SqlResult<T extends readonly object[]> = T & { readonly count: number };

/**
 * What the packages run queries with: a tagged template (values become bound parameters) and
 * `unsafe` for trusted multi-statement text (migrations).
 */
export interface SqlQueries {
  /** Runs one statement; `${value}`s are sent as bound parameters. */
  <T extends readonly object[] = SqlRow[]>(template: TemplateStringsArray, ...values: readonly SqlValue[]): Promise<SqlResult<T>>;
  /** Runs trusted SQL text as is (may hold several statements). */
  unsafe<T extends object[] = SqlRow[]>(query: string): Promise<SqlResult<T>>;
}

/** A connection inside an open transaction (the callback's argument of {@link SqlClient.begin}). */
export interface SqlTransaction extends SqlQueries {}

/**
 * The PostgreSQL client the database packages take, declared by the shape they use so that their
 * published types import no driver (and need neither Node's types nor the DOM lib). A postgres.js
 * client (`postgres(url)`, its `Sql`) is one; postgres.js's semantics are assumed (a transaction
 * commits when the callback resolves and rolls back when it throws; `listen` listens again after a
 * reconnect and calls `onListen` each time).
 */
export interface SqlClient extends SqlQueries {
  /** Runs `work` in a transaction on one connection: committed when it resolves, rolled back when it throws. */
  begin<T>(work: (tx: SqlTransaction) => Promise<T>): Promise<T>;
  /** `LISTEN`s on `channel`; `onListen` runs whenever the listening connection is (re)established. */
  listen(channel: string, onNotify: (payload: string) => void, onListen?: () => void): Promise<{ unlisten(): Promise<void> }>;
}

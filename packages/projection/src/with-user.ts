import type { SqlClient, SqlTransaction } from '@mana-ai/core';
import { ProjectionError } from './errors.js';

/**
 * Runs `fn` in a transaction scoped to one user for row-level security: `app.current_user_id` is
 * set transaction-locally before `fn` runs (docs/wire-contract.md#the-sync-log). An empty id is refused before the
 * database is touched (`PROJECTION_EMPTY_USER_ID`).
 */
export async function withUser<T>(sql: SqlClient, userId: string, fn: (tx: SqlTransaction) => Promise<T>): Promise<T> {
  if (typeof userId !== 'string' || userId === '') {
    throw new ProjectionError('PROJECTION_EMPTY_USER_ID', 'withUser: empty user id');
  }
  const result = await sql.begin(async (tx) => {
    await tx`SELECT set_config('app.current_user_id', ${userId}, true)`;
    return [await fn(tx)] as const;
  });
  return (result as unknown as readonly [T])[0];
}

/** Refuses an empty user id before the database is touched (`PROJECTION_EMPTY_USER_ID`). */
export function assertUserId(userId: unknown): asserts userId is string {
  if (typeof userId !== 'string' || userId === '') {
    throw new ProjectionError('PROJECTION_EMPTY_USER_ID', 'withUser: empty user id');
  }
}

/** Sets the RLS user of an already open transaction (same rules as {@link withUser}). */
export async function setTransactionUser(tx: SqlTransaction, userId: string): Promise<void> {
  assertUserId(userId);
  await tx`SELECT set_config('app.current_user_id', ${userId}, true)`;
}

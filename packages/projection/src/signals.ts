import type { ProjectionContext } from './context.js';

/** NOTIFY channel of the change trigger: a user's device wrote a mission or an agent (migration 0005). */
export const CHANGES_CHANNEL = 'mana_ai_changes';
/** NOTIFY channel of a refresh that applied rows: missions may have become claimable. */
export const DUE_CHANNEL = 'mana_ai_due';
/** The change trigger on `sync_changes` that migration 0005 installs when it may. */
export const CHANGE_TRIGGER = 'mana_ai_notify_changes';

/** What woke the dispatcher: new rows in the feed (`changes`) or a refresh that applied rows (`due`). */
export type ProjectionSignal = 'changes' | 'due';

/** A running subscription of {@link watchSignals}. */
export interface ProjectionWatch {
  /**
   * True when the change trigger is installed, so `changes` arrives for every new mission or agent
   * row; false means the caller must poll (`hasPendingChanges()`). Checked again on every reconnect.
   */
  readonly notifying: boolean;
  /** Stops the signals (idempotent). */
  close(): Promise<void>;
}

/** The database's `clock_timestamp()` in epoch milliseconds. */
export async function databaseNow(context: ProjectionContext): Promise<number> {
  const [row] = await context.sql<{ now: number }[]>`SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now`;
  return row!.now;
}

/**
 * Milliseconds (database time) until the earliest moment a mission may become claimable: the
 * earliest `next_run_at` among active missions without a live lease whose agent has a free slot,
 * or the earliest expiry of a live lease (a crashed instance's missions, an agent's slot). ≤ 0
 * means now; null when nothing is scheduled. One call of the definer function `mana_ai.next_due_in_ms`
 * (migration 0006: a time, no keys) over the due indexes and the lanes: the missions of an agent at
 * its limit are not visited, and a lane with live leases costs one probe.
 */
export async function nextDueInMs(context: ProjectionContext): Promise<number | null> {
  const [row] = await context.sql<{ ms: number | null }[]>`SELECT mana_ai.next_due_in_ms() AS ms`;
  // Rounded up: a timer set from it never fires before the mission is due on the database's clock.
  return row?.ms === null || row?.ms === undefined ? null : Math.ceil(row.ms);
}

async function changeTriggerInstalled(context: ProjectionContext): Promise<boolean> {
  const [row] = await context.sql<{ installed: boolean }[]>`
    SELECT EXISTS (
      SELECT 1 FROM pg_catalog.pg_trigger
      WHERE tgrelid = to_regclass('public.sync_changes') AND tgname = ${CHANGE_TRIGGER} AND tgenabled <> 'D'
    ) AS installed`;
  return row?.installed === true;
}

/**
 * Calls `onSignal` on `NOTIFY mana_ai_changes` (the change trigger) and `NOTIFY mana_ai_due` (a
 * refresh that applied rows), over postgres.js `listen` on one dedicated connection that reconnects
 * by itself. After a reconnect `onSignal('changes')` is called once, since notifications sent while
 * disconnected are lost. A signal is a hint to look, never a promise of work: keep a longest sleep.
 */
export async function watchSignals(context: ProjectionContext, onSignal: (signal: ProjectionSignal) => void): Promise<ProjectionWatch> {
  let closed = false;
  let notifying = await changeTriggerInstalled(context);
  // postgres.js calls `onlisten` once per LISTEN: the first calls are ours, later ones follow a reconnect.
  let subscribed = false;
  const relistened = (): void => {
    if (!subscribed || closed) return;
    onSignal('changes');
    changeTriggerInstalled(context).then(
      (installed) => {
        notifying = installed;
      },
      () => {},
    );
  };
  const handles = await Promise.all([
    context.sql.listen(CHANGES_CHANNEL, () => closed || onSignal('changes'), relistened),
    context.sql.listen(DUE_CHANNEL, () => closed || onSignal('due'), relistened),
  ]);
  subscribed = true;
  return {
    get notifying() {
      return notifying;
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.all(handles.map((handle) => handle.unlisten().catch(() => {})));
    },
  };
}

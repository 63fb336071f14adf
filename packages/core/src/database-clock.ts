import type { Clock } from './clock.js';

/** A clock that follows the database's clock (see {@link createDatabaseClock}). */
export interface DatabaseClock extends Clock {
  /** Measures the offset again when the last measurement is older than `maxAgeMs` (or never happened). */
  calibrate(maxAgeMs?: number): Promise<void>;
  /** The measured offset (database minus local), in ms; 0 until calibrated. */
  readonly offsetMs: number;
}

/**
 * The local clock shifted by the database's offset, measured by `measure` (the database's now in
 * epoch ms) at the midpoint of its round trip. Only for descriptive stamps (an iteration's
 * `startedAt`/`finishedAt`): everything compared across instances is decided by the database itself.
 * A failed measurement keeps the last offset.
 */
export function createDatabaseClock(local: Clock, measure?: () => Promise<number>): DatabaseClock {
  let offset = 0;
  let measuredAt: number | undefined;
  return {
    now: () => local.now() + offset,
    get offsetMs() {
      return offset;
    },
    async calibrate(maxAgeMs = 60_000) {
      if (!measure) return;
      const before = local.now();
      if (measuredAt !== undefined && before - measuredAt < maxAgeMs) return;
      try {
        const databaseNow = await measure();
        const after = local.now();
        if (Number.isFinite(databaseNow)) {
          offset = databaseNow - (before + after) / 2;
          measuredAt = after;
        }
      } catch {
        // Keep the last offset; the next cycle measures again.
      }
    },
  };
}

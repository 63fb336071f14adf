/** The clock port: every "now" in the packages comes from here so tests can control time. */
export interface Clock {
  /** Current time in milliseconds since the epoch. */
  now(): number;
}

/** The real wall clock. */
export const systemClock: Clock = { now: () => Date.now() };

/** A clock for tests: time stands still until it is set or advanced. */
export interface ManualClock extends Clock {
  /** Moves the clock to `epochMs` (or an ISO string). */
  set(to: number | string | Date): void;
  /** Moves the clock forward by `ms`. */
  advance(ms: number): void;
}

/** Creates a {@link ManualClock} starting at `start` (default: the epoch). */
export function createManualClock(start: number | string | Date = 0): ManualClock {
  let current = toEpochMs(start);
  return {
    now: () => current,
    set: (to) => {
      current = toEpochMs(to);
    },
    advance: (ms) => {
      current += ms;
    },
  };
}

function toEpochMs(value: number | string | Date): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string') return Date.parse(value);
  return value.getTime();
}

/** `toISOString()` of a clock's current time: the only stamp format mana writes. */
export function isoNow(clock: Clock): string {
  return new Date(clock.now()).toISOString();
}

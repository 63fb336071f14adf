import type { MissionCadence } from './domain.js';
import { CoreError } from './errors.js';

/** The default zone for `daily`/`weekly` cadences when a mission carries none. */
export const DEFAULT_TIME_ZONE = 'Europe/Berlin';

/** Options of {@link nextRunAfter}. */
export interface NextRunOptions {
  /** IANA time zone in which `daily`/`weekly` wall-clock times are read (default `Europe/Berlin`). */
  timeZone?: string;
}

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    try {
      formatter = new Intl.DateTimeFormat('en-US', {
        timeZone,
        hourCycle: 'h23',
        year: 'numeric',
        month: 'numeric',
        day: 'numeric',
        hour: 'numeric',
        minute: 'numeric',
        second: 'numeric',
      });
    } catch (cause) {
      throw new CoreError('CORE_INVALID_TIME_ZONE', `unknown time zone "${timeZone}"`, { cause });
    }
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

/** Throws `CORE_INVALID_TIME_ZONE` unless `timeZone` is an IANA zone known to this runtime. */
export function assertTimeZone(timeZone: string): void {
  formatterFor(timeZone);
}

interface WallClock {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

/** The wall-clock reading in `timeZone` at instant `epochMs`. */
function wallClockAt(epochMs: number, timeZone: string): WallClock {
  const parts: Record<string, number> = {};
  for (const part of formatterFor(timeZone).formatToParts(new Date(epochMs))) {
    if (part.type !== 'literal') parts[part.type] = Number(part.value);
  }
  return {
    year: parts.year!,
    month: parts.month!,
    day: parts.day!,
    hour: parts.hour!,
    minute: parts.minute!,
    second: parts.second!,
  };
}

/** The zone's UTC offset in ms at instant `epochMs` (local = utc + offset). */
function offsetAt(epochMs: number, timeZone: string): number {
  const wall = wallClockAt(epochMs, timeZone);
  const asUtc = Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour, wall.minute, wall.second);
  return asUtc - (epochMs - (((epochMs % 1000) + 1000) % 1000));
}

/**
 * The instant at which the wall clock of `timeZone` reads the given local time. In a DST overlap
 * (the hour that happens twice) the earlier instant is chosen; in a DST gap (a time that never
 * happens) the instant is taken with the offset before the gap, i.e. just after the gap.
 */
export function zonedTimeToInstant(
  local: { year: number; month: number; day: number; hour: number; minute: number },
  timeZone: string,
): number {
  const wallAsUtc = Date.UTC(local.year, local.month - 1, local.day, local.hour, local.minute, 0);
  const before = offsetAt(wallAsUtc - DAY_MS / 2, timeZone);
  const after = offsetAt(wallAsUtc + DAY_MS / 2, timeZone);
  const candidates = [wallAsUtc - before, wallAsUtc - after].filter((instant) => {
    const wall = wallClockAt(instant, timeZone);
    return Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour, wall.minute, 0) === wallAsUtc;
  });
  return candidates.length > 0 ? Math.min(...candidates) : wallAsUtc - before;
}

function integerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

function invalid(message: string): CoreError {
  return new CoreError('CORE_INVALID_CADENCE', message);
}

/**
 * The first run strictly after `after` for a cadence, or `null` when the cadence never runs by
 * itself (`manual`, `cron`, unknown kinds).
 *
 * - `interval`: `after + everyMinutes`.
 * - `daily`: the next `atHour:atMinute` wall-clock time in the zone.
 * - `weekly`: the next `dayOfWeek` (0 = Sunday) at `atHour:00` wall-clock time in the zone.
 *
 * Throws `CORE_INVALID_CADENCE` for out-of-range fields and `CORE_INVALID_TIME_ZONE` for an
 * unknown zone.
 */
export function nextRunAfter(cadence: MissionCadence | unknown, after: Date | number, options: NextRunOptions = {}): Date | null {
  const afterMs = typeof after === 'number' ? after : after.getTime();
  if (!Number.isFinite(afterMs)) throw new CoreError('CORE_INVALID_ARGUMENT', 'nextRunAfter: invalid instant');
  if (typeof cadence !== 'object' || cadence === null) return null;
  const value = cadence as Record<string, unknown>;
  const timeZone = options.timeZone ?? DEFAULT_TIME_ZONE;
  switch (value.kind) {
    case 'interval': {
      const minutes = value.everyMinutes;
      if (typeof minutes !== 'number' || !Number.isFinite(minutes) || minutes <= 0) {
        throw invalid('interval cadence needs a positive everyMinutes');
      }
      return new Date(afterMs + Math.round(minutes * MINUTE_MS));
    }
    case 'daily': {
      const minute = value.atMinute ?? 0;
      if (!integerIn(value.atHour, 0, 23) || !integerIn(minute, 0, 59)) {
        throw invalid('daily cadence needs atHour 0..23 and atMinute 0..59');
      }
      return new Date(nextWallClock(afterMs, timeZone, value.atHour, minute, () => true));
    }
    case 'weekly': {
      if (!integerIn(value.dayOfWeek, 0, 6) || !integerIn(value.atHour, 0, 23)) {
        throw invalid('weekly cadence needs dayOfWeek 0..6 and atHour 0..23');
      }
      const dayOfWeek = value.dayOfWeek;
      return new Date(nextWallClock(afterMs, timeZone, value.atHour, 0, (weekday) => weekday === dayOfWeek));
    }
    default:
      return null;
  }
}

/** Walks local calendar days from the day of `afterMs` until a matching slot lies after it. */
function nextWallClock(
  afterMs: number,
  timeZone: string,
  hour: number,
  minute: number,
  dayMatches: (weekday: number) => boolean,
): number {
  const today = wallClockAt(afterMs, timeZone);
  for (let offset = 0; offset <= 8; offset++) {
    const date = new Date(Date.UTC(today.year, today.month - 1, today.day + offset));
    if (!dayMatches(date.getUTCDay())) continue;
    const instant = zonedTimeToInstant(
      { year: date.getUTCFullYear(), month: date.getUTCMonth() + 1, day: date.getUTCDate(), hour, minute },
      timeZone,
    );
    if (instant > afterMs) return instant;
  }
  throw new CoreError('CORE_INVALID_CADENCE', 'no matching slot within 8 days');
}

/** True when the cadence schedules itself (`interval`, `daily`, `weekly`). */
export function isRecurringCadence(cadence: unknown): boolean {
  if (typeof cadence !== 'object' || cadence === null) return false;
  const kind = (cadence as Record<string, unknown>).kind;
  return kind === 'interval' || kind === 'daily' || kind === 'weekly';
}

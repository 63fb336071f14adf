import { Cron } from 'croner';
import type { MissionCadence } from './domain.js';
import { CoreError } from './errors.js';

/** The default zone for `daily`/`weekly`/`cron` cadences when a mission carries none. */
export const DEFAULT_TIME_ZONE = 'Europe/Berlin';

/** Options of {@link nextRunAfter}. */
export interface NextRunOptions {
  /** IANA time zone in which `daily`/`weekly`/`cron` wall-clock times are read (default `Europe/Berlin`). */
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

/** Why a value is not a {@link MissionCadence} (see {@link parseCadence}). */
export type CadenceInvalidReason =
  | 'not-an-object'
  | 'unknown-kind'
  | 'invalid-interval'
  | 'invalid-daily'
  | 'invalid-weekly'
  | 'invalid-cron';

/** The outcome of {@link parseCadence}: the typed cadence, or why the value is not one. */
export type CadenceParseResult =
  | { ok: true; cadence: MissionCadence }
  | { ok: false; reason: CadenceInvalidReason; error: CoreError };

/** Fields of a cron expression: minute, hour, day of month, month, day of week. */
const CRON_FIELDS = 5;
// Five-field patterns only (seconds and years refused); day of month and day of week are ORed when
// both are restricted, as in Vixie cron.
const CRON_OPTIONS = { mode: '5-part', domAndDow: false } as const;

function rejected(reason: CadenceInvalidReason, message: string): CadenceParseResult {
  return { ok: false, reason, error: new CoreError('CORE_INVALID_CADENCE', message, { details: { reason } }) };
}

function parseCron(expression: unknown): CadenceParseResult {
  if (typeof expression !== 'string' || expression.trim().split(/\s+/).length !== CRON_FIELDS) {
    return rejected('invalid-cron', 'cron cadence needs a five-field expression (minute hour day-of-month month day-of-week)');
  }
  try {
    // A pattern that parses but can never match (e.g. 30 February) is refused too.
    if (new Cron(expression, { ...CRON_OPTIONS, timezone: 'UTC' }).nextRun(new Date(0)) === null) {
      return rejected('invalid-cron', 'cron expression never matches');
    }
  } catch {
    return rejected('invalid-cron', 'cron expression does not parse');
  }
  return { ok: true, cadence: { kind: 'cron', expression } };
}

/**
 * Checks an untrusted value (e.g. a synced mission's `cadence` field) and returns the typed
 * cadence, or the reason with a `CORE_INVALID_CADENCE` error; never throws. Rules: `interval`
 * needs a positive finite `everyMinutes`; `daily` an integer `atHour` 0…23 and `atMinute` 0…59
 * (missing = 0); `weekly` an integer `dayOfWeek` 0…6 (0 = Sunday) and `atHour` 0…23; `cron` a
 * five-field expression that can match; `manual` nothing. Any other `kind` is `unknown-kind`.
 */
export function parseCadence(value: unknown): CadenceParseResult {
  if (typeof value !== 'object' || value === null) return rejected('not-an-object', 'cadence must be an object');
  const fields = value as Record<string, unknown>;
  switch (fields.kind) {
    case 'manual':
      return { ok: true, cadence: { kind: 'manual' } };
    case 'interval': {
      const minutes = fields.everyMinutes;
      if (typeof minutes !== 'number' || !Number.isFinite(minutes) || minutes <= 0) {
        return rejected('invalid-interval', 'interval cadence needs a positive everyMinutes');
      }
      return { ok: true, cadence: { kind: 'interval', everyMinutes: minutes } };
    }
    case 'daily': {
      const minute = fields.atMinute ?? 0;
      if (!integerIn(fields.atHour, 0, 23) || !integerIn(minute, 0, 59)) {
        return rejected('invalid-daily', 'daily cadence needs atHour 0..23 and atMinute 0..59');
      }
      return { ok: true, cadence: { kind: 'daily', atHour: fields.atHour, atMinute: minute } };
    }
    case 'weekly':
      if (!integerIn(fields.dayOfWeek, 0, 6) || !integerIn(fields.atHour, 0, 23)) {
        return rejected('invalid-weekly', 'weekly cadence needs dayOfWeek 0..6 and atHour 0..23');
      }
      return { ok: true, cadence: { kind: 'weekly', dayOfWeek: fields.dayOfWeek, atHour: fields.atHour } };
    case 'cron':
      return parseCron(fields.expression);
    default:
      return rejected('unknown-kind', 'unknown cadence kind');
  }
}

/**
 * The first run strictly after `after` for a cadence, or `null` when it never runs by itself
 * (`manual`). Values from outside (synced records) go through {@link parseCadence} first.
 *
 * - `interval`: `after + everyMinutes`.
 * - `daily`: the next `atHour:atMinute` wall-clock time in the zone.
 * - `weekly`: the next `dayOfWeek` (0 = Sunday) at `atHour:00` wall-clock time in the zone.
 * - `cron`: the next minute the five-field expression matches on the zone's wall clock. A time in
 *   a DST gap: a fixed time (single minute and hour) runs at the first minute after the gap,
 *   stepped or ranged times that fall in the gap are skipped; a time that happens twice runs
 *   once for a fixed time, on both occurrences otherwise.
 *
 * Throws `CORE_INVALID_CADENCE` when the fields break {@link parseCadence}'s rules and
 * `CORE_INVALID_TIME_ZONE` for an unknown zone.
 */
export function nextRunAfter(cadence: MissionCadence, after: Date | number, options: NextRunOptions = {}): Date | null {
  const afterMs = typeof after === 'number' ? after : after.getTime();
  if (!Number.isFinite(afterMs)) throw new CoreError('CORE_INVALID_ARGUMENT', 'nextRunAfter: invalid instant');
  const parsed = parseCadence(cadence);
  if (!parsed.ok) throw parsed.error;
  const timeZone = options.timeZone ?? DEFAULT_TIME_ZONE;
  const valid = parsed.cadence;
  switch (valid.kind) {
    case 'manual':
      return null;
    case 'interval':
      return new Date(afterMs + Math.round(valid.everyMinutes * MINUTE_MS));
    case 'daily':
      return new Date(nextWallClock(afterMs, timeZone, valid.atHour, valid.atMinute, () => true));
    case 'weekly':
      return new Date(nextWallClock(afterMs, timeZone, valid.atHour, 0, (weekday) => weekday === valid.dayOfWeek));
    case 'cron':
      assertTimeZone(timeZone);
      return new Cron(valid.expression, { ...CRON_OPTIONS, timezone: timeZone }).nextRun(new Date(afterMs));
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

/** True when the value is a valid cadence that schedules itself (`interval`, `daily`, `weekly`, `cron`). */
export function isRecurringCadence(cadence: unknown): boolean {
  const parsed = parseCadence(cadence);
  return parsed.ok && parsed.cadence.kind !== 'manual';
}

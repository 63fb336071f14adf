import { describe, expect, it } from 'vitest';
import { assertTimeZone, isRecurringCadence, nextRunAfter, parseCadence, zonedTimeToInstant } from './cadence.js';
import type { MissionCadence } from './domain.js';
import { ManaAiError } from './errors.js';

const berlin = { timeZone: 'Europe/Berlin' };
const iso = (value: Date | null): string | null => (value ? value.toISOString() : null);

describe('nextRunAfter', () => {
  it('adds the interval to the given instant when the cadence is interval', () => {
    expect(iso(nextRunAfter({ kind: 'interval', everyMinutes: 90 }, new Date('2026-04-20T08:00:00.000Z')))).toBe(
      '2026-04-20T09:30:00.000Z',
    );
  });

  it('keeps a fixed elapsed time across the spring DST change when the cadence is interval', () => {
    const result = nextRunAfter({ kind: 'interval', everyMinutes: 60 }, new Date('2026-03-29T00:30:00.000Z'), berlin);
    expect(iso(result)).toBe('2026-03-29T01:30:00.000Z');
  });

  it('picks today when the daily slot is still ahead', () => {
    const result = nextRunAfter({ kind: 'daily', atHour: 8, atMinute: 15 }, new Date('2026-06-01T05:00:00.000Z'), berlin);
    expect(iso(result)).toBe('2026-06-01T06:15:00.000Z');
  });

  it('picks tomorrow when the daily slot is now or already past', () => {
    const cadence = { kind: 'daily', atHour: 8, atMinute: 15 } as const;
    expect(iso(nextRunAfter(cadence, new Date('2026-06-01T06:15:00.000Z'), berlin))).toBe('2026-06-02T06:15:00.000Z');
    expect(iso(nextRunAfter(cadence, new Date('2026-06-01T07:00:00.000Z'), berlin))).toBe('2026-06-02T06:15:00.000Z');
  });

  it('keeps the wall-clock time across the spring-forward change in Europe/Berlin', () => {
    // 2026-03-29: 02:00 CET jumps to 03:00 CEST; 08:00 local is 07:00Z before and 06:00Z after.
    const cadence = { kind: 'daily', atHour: 8, atMinute: 0 } as const;
    expect(iso(nextRunAfter(cadence, new Date('2026-03-28T07:00:00.000Z'), berlin))).toBe('2026-03-29T06:00:00.000Z');
  });

  it('keeps the wall-clock time across the fall-back change in Europe/Berlin', () => {
    // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 08:00 local is 06:00Z before and 07:00Z after.
    const cadence = { kind: 'daily', atHour: 8, atMinute: 0 } as const;
    expect(iso(nextRunAfter(cadence, new Date('2026-10-24T06:00:00.000Z'), berlin))).toBe('2026-10-25T07:00:00.000Z');
  });

  it('runs just after the gap when the daily time does not exist on the spring-forward day', () => {
    // 02:30 never happens on 2026-03-29 in Berlin; the run happens at 03:30 CEST (01:30Z).
    const cadence = { kind: 'daily', atHour: 2, atMinute: 30 } as const;
    expect(iso(nextRunAfter(cadence, new Date('2026-03-28T23:00:00.000Z'), berlin))).toBe('2026-03-29T01:30:00.000Z');
  });

  it('runs once, at the first occurrence, when the daily time happens twice on the fall-back day', () => {
    const cadence = { kind: 'daily', atHour: 2, atMinute: 30 } as const;
    const first = nextRunAfter(cadence, new Date('2026-10-24T23:00:00.000Z'), berlin);
    expect(iso(first)).toBe('2026-10-25T00:30:00.000Z');
    // After the first occurrence, the repeated 02:30 (01:30Z) is not a new slot: the next is a day later.
    expect(iso(nextRunAfter(cadence, first!, berlin))).toBe('2026-10-26T01:30:00.000Z');
  });

  it('finds the next weekday at the hour when the cadence is weekly', () => {
    // 2026-06-03 is a Wednesday; the next Monday (1) 09:00 Berlin is 2026-06-08T07:00Z.
    const cadence = { kind: 'weekly', dayOfWeek: 1, atHour: 9 } as const;
    expect(iso(nextRunAfter(cadence, new Date('2026-06-03T12:00:00.000Z'), berlin))).toBe('2026-06-08T07:00:00.000Z');
  });

  it('waits a full week when the weekly slot of today has passed', () => {
    const cadence = { kind: 'weekly', dayOfWeek: 1, atHour: 9 } as const;
    expect(iso(nextRunAfter(cadence, new Date('2026-06-08T07:00:00.000Z'), berlin))).toBe('2026-06-15T07:00:00.000Z');
    expect(iso(nextRunAfter(cadence, new Date('2026-06-08T06:59:59.999Z'), berlin))).toBe('2026-06-08T07:00:00.000Z');
  });

  it('keeps the weekly wall-clock hour across both DST changes in Europe/Berlin', () => {
    const sunday = { kind: 'weekly', dayOfWeek: 0, atHour: 10 } as const;
    expect(iso(nextRunAfter(sunday, new Date('2026-03-22T09:00:00.000Z'), berlin))).toBe('2026-03-29T08:00:00.000Z');
    expect(iso(nextRunAfter(sunday, new Date('2026-10-18T08:00:00.000Z'), berlin))).toBe('2026-10-25T09:00:00.000Z');
  });

  it('reads the wall clock in the given zone when another zone is configured', () => {
    const cadence = { kind: 'daily', atHour: 8, atMinute: 0 } as const;
    const result = nextRunAfter(cadence, new Date('2026-06-01T00:00:00.000Z'), { timeZone: 'America/New_York' });
    expect(iso(result)).toBe('2026-06-01T12:00:00.000Z');
  });

  it('returns null when the cadence is manual', () => {
    expect(nextRunAfter({ kind: 'manual' }, new Date('2026-06-01T00:00:00.000Z'))).toBeNull();
  });

  it('throws a typed error when the cadence fields are out of range', () => {
    const at = new Date('2026-06-01T00:00:00.000Z');
    const cadences: MissionCadence[] = [
      { kind: 'interval', everyMinutes: 0 },
      { kind: 'interval', everyMinutes: Number.NaN },
      { kind: 'daily', atHour: 24, atMinute: 0 },
      { kind: 'daily', atHour: 8, atMinute: 60 },
      { kind: 'weekly', dayOfWeek: 7, atHour: 9 },
      { kind: 'weekly', dayOfWeek: 1, atHour: 1.5 },
      { kind: 'cron', expression: '61 * * * *' },
    ];
    for (const cadence of cadences) {
      expect(() => nextRunAfter(cadence, at), JSON.stringify(cadence)).toThrowError(
        expect.objectContaining({ code: 'CORE_INVALID_CADENCE' }),
      );
    }
  });

  it('throws a typed error when the time zone is unknown', () => {
    expect(() =>
      nextRunAfter({ kind: 'daily', atHour: 8, atMinute: 0 }, new Date(), { timeZone: 'Mars/Olympus_Mons' }),
    ).toThrowError(expect.objectContaining({ code: 'CORE_INVALID_TIME_ZONE' }));
    expect(() => assertTimeZone('Not/AZone')).toThrow(ManaAiError);
    expect(() => assertTimeZone('Europe/Berlin')).not.toThrow();
  });

  it('always returns an instant strictly after the given one for every recurring kind', () => {
    const cadences: MissionCadence[] = [
      { kind: 'interval', everyMinutes: 1 },
      { kind: 'daily', atHour: 2, atMinute: 30 },
      { kind: 'weekly', dayOfWeek: 0, atHour: 2 },
      { kind: 'cron', expression: '30 2 * * *' },
      { kind: 'cron', expression: '*/20 1-3 * * 0' },
    ];
    // Every hour of the two DST weeks of 2026.
    for (const start of ['2026-03-25T00:00:00.000Z', '2026-10-21T00:00:00.000Z']) {
      for (let hour = 0; hour < 7 * 24; hour++) {
        const at = Date.parse(start) + hour * 3_600_000;
        for (const cadence of cadences) {
          const next = nextRunAfter(cadence, at, berlin)!;
          expect(next.getTime()).toBeGreaterThan(at);
          expect(next.getTime() - at).toBeLessThanOrEqual(7 * 86_400_000 + 3_600_000);
        }
      }
    }
  });
});

describe('nextRunAfter with a cron cadence', () => {
  const cron = (expression: string): MissionCadence => ({ kind: 'cron', expression });
  const next = (expression: string, after: string, timeZone = 'Europe/Berlin'): string | null =>
    iso(nextRunAfter(cron(expression), new Date(after), { timeZone }));

  it('reads the expression on the zone’s wall clock in winter and in summer', () => {
    expect(next('15 8 * * *', '2026-01-15T00:00:00.000Z')).toBe('2026-01-15T07:15:00.000Z');
    expect(next('15 8 * * *', '2026-07-15T00:00:00.000Z')).toBe('2026-07-15T06:15:00.000Z');
    expect(next('15 8 * * *', '2026-07-15T00:00:00.000Z', 'UTC')).toBe('2026-07-15T08:15:00.000Z');
  });

  it('returns a time strictly after the given one when that one matches', () => {
    expect(next('15 8 * * *', '2026-07-15T06:15:00.000Z')).toBe('2026-07-16T06:15:00.000Z');
  });

  it('runs a fixed time that falls into the Berlin spring-forward gap at the first minute after it', () => {
    // 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    expect(next('30 2 * * *', '2026-03-28T23:00:00.000Z')).toBe('2026-03-29T01:00:00.000Z');
    expect(next('30 2 * * *', '2026-03-29T01:00:00.000Z')).toBe('2026-03-30T00:30:00.000Z');
  });

  it('runs a fixed time that happens twice in the Berlin fall-back hour once, at its first occurrence', () => {
    // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens at 00:30Z and at 01:30Z.
    expect(next('30 2 * * *', '2026-10-24T23:00:00.000Z')).toBe('2026-10-25T00:30:00.000Z');
    expect(next('30 2 * * *', '2026-10-25T00:30:00.000Z')).toBe('2026-10-26T01:30:00.000Z');
  });

  it('follows elapsed time for a stepped expression across the Berlin fall-back hour', () => {
    const runs: string[] = [];
    let at = '2026-10-24T23:50:00.000Z';
    for (let index = 0; index < 6; index++) {
      at = next('*/30 * * * *', at)!;
      runs.push(at);
    }
    expect(runs).toEqual([
      '2026-10-25T00:00:00.000Z',
      '2026-10-25T00:30:00.000Z',
      '2026-10-25T01:00:00.000Z',
      '2026-10-25T01:30:00.000Z',
      '2026-10-25T02:00:00.000Z',
      '2026-10-25T02:30:00.000Z',
    ]);
  });

  it('keeps 09:00 on New York weekdays across the March DST change', () => {
    // 2026-03-08 (Sunday): EST (UTC−5) becomes EDT (UTC−4).
    expect(next('0 9 * * 1-5', '2026-03-06T15:00:00.000Z', 'America/New_York')).toBe('2026-03-09T13:00:00.000Z');
    expect(next('0 9 * * 1-5', '2026-03-05T15:00:00.000Z', 'America/New_York')).toBe('2026-03-06T14:00:00.000Z');
    // 02:30 does not exist on 2026-03-08 in New York either.
    expect(next('30 2 * * *', '2026-03-08T05:00:00.000Z', 'America/New_York')).toBe('2026-03-08T07:00:00.000Z');
    // 2026-11-01: EDT becomes EST; 01:30 happens twice, the job runs at the first.
    expect(next('30 1 * * *', '2026-11-01T04:00:00.000Z', 'America/New_York')).toBe('2026-11-01T05:30:00.000Z');
    expect(next('30 1 * * *', '2026-11-01T05:30:00.000Z', 'America/New_York')).toBe('2026-11-02T06:30:00.000Z');
  });

  it('matches either day field when both day of month and day of week are restricted (Vixie cron)', () => {
    // The 1st of the month or a Monday: from Tuesday 2026-06-02, Monday 8 June comes first.
    expect(next('0 12 1 * 1', '2026-06-02T00:00:00.000Z', 'UTC')).toBe('2026-06-08T12:00:00.000Z');
  });

  it('throws CORE_INVALID_TIME_ZONE when the zone is unknown', () => {
    expect(() => nextRunAfter(cron('0 9 * * *'), new Date(), { timeZone: 'Mars/Olympus_Mons' })).toThrowError(
      expect.objectContaining({ code: 'CORE_INVALID_TIME_ZONE' }),
    );
  });
});

describe('parseCadence', () => {
  it('returns each valid kind typed, with atMinute defaulting to 0', () => {
    expect(parseCadence({ kind: 'manual' })).toEqual({ ok: true, cadence: { kind: 'manual' } });
    expect(parseCadence({ kind: 'interval', everyMinutes: 15, extra: 1 })).toEqual({
      ok: true,
      cadence: { kind: 'interval', everyMinutes: 15 },
    });
    expect(parseCadence({ kind: 'daily', atHour: 8 })).toEqual({ ok: true, cadence: { kind: 'daily', atHour: 8, atMinute: 0 } });
    expect(parseCadence({ kind: 'weekly', dayOfWeek: 1, atHour: 9 })).toEqual({
      ok: true,
      cadence: { kind: 'weekly', dayOfWeek: 1, atHour: 9 },
    });
    expect(parseCadence({ kind: 'cron', expression: '*/15 8-18 * jan-mar mon-fri' })).toEqual({
      ok: true,
      cadence: { kind: 'cron', expression: '*/15 8-18 * jan-mar mon-fri' },
    });
  });

  it.each([
    ['a misspelt kind', { kind: 'dayly', atHour: 8 }, 'unknown-kind'],
    ['a string', 'daily', 'not-an-object'],
    ['null', null, 'not-an-object'],
    ['undefined', undefined, 'not-an-object'],
    ['a zero interval', { kind: 'interval', everyMinutes: 0 }, 'invalid-interval'],
    ['a daily hour of 24', { kind: 'daily', atHour: 24, atMinute: 0 }, 'invalid-daily'],
    ['a weekday of 7', { kind: 'weekly', dayOfWeek: 7, atHour: 9 }, 'invalid-weekly'],
    ['cron without an expression', { kind: 'cron' }, 'invalid-cron'],
    ['cron with six fields (seconds)', { kind: 'cron', expression: '0 * * * * *' }, 'invalid-cron'],
    ['cron with four fields', { kind: 'cron', expression: '* * * *' }, 'invalid-cron'],
    ['a cron nickname', { kind: 'cron', expression: '@daily' }, 'invalid-cron'],
    ['cron minute 61', { kind: 'cron', expression: '61 * * * *' }, 'invalid-cron'],
    ['cron garbage', { kind: 'cron', expression: 'a b c d e' }, 'invalid-cron'],
    ['cron on 30 February', { kind: 'cron', expression: '0 0 30 2 *' }, 'invalid-cron'],
  ])('returns reason %s → %s with a CORE_INVALID_CADENCE error', (_, value, reason) => {
    const result = parseCadence(value);
    expect(result).toMatchObject({ ok: false, reason, error: { code: 'CORE_INVALID_CADENCE', details: { reason } } });
    if (!result.ok) expect(result.error).toBeInstanceOf(ManaAiError);
  });
});

describe('zonedTimeToInstant', () => {
  it('converts a Berlin wall-clock time in winter and in summer', () => {
    expect(new Date(zonedTimeToInstant({ year: 2026, month: 1, day: 15, hour: 12, minute: 0 }, 'Europe/Berlin')).toISOString()).toBe(
      '2026-01-15T11:00:00.000Z',
    );
    expect(new Date(zonedTimeToInstant({ year: 2026, month: 7, day: 15, hour: 12, minute: 0 }, 'Europe/Berlin')).toISOString()).toBe(
      '2026-07-15T10:00:00.000Z',
    );
  });
});

describe('isRecurringCadence', () => {
  it('is true only for valid interval, daily, weekly and cron cadences', () => {
    expect(isRecurringCadence({ kind: 'interval', everyMinutes: 5 })).toBe(true);
    expect(isRecurringCadence({ kind: 'cron', expression: '0 9 * * 1' })).toBe(true);
    expect(isRecurringCadence({ kind: 'cron', expression: '0 9 * *' })).toBe(false);
    expect(isRecurringCadence({ kind: 'dayly', atHour: 8 })).toBe(false);
    expect(isRecurringCadence({ kind: 'daily', atHour: 1, atMinute: 0 })).toBe(true);
    expect(isRecurringCadence({ kind: 'weekly', dayOfWeek: 1, atHour: 1 })).toBe(true);
    expect(isRecurringCadence({ kind: 'manual' })).toBe(false);
    expect(isRecurringCadence(null)).toBe(false);
  });
});

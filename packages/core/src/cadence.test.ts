import { describe, expect, it } from 'vitest';
import { assertTimeZone, isRecurringCadence, nextRunAfter, zonedTimeToInstant } from './cadence.js';
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

  it('returns null when the cadence is manual, cron, unknown or missing', () => {
    const at = new Date('2026-06-01T00:00:00.000Z');
    expect(nextRunAfter({ kind: 'manual' }, at)).toBeNull();
    expect(nextRunAfter({ kind: 'cron', expression: '* * * * *' }, at)).toBeNull();
    expect(nextRunAfter({ kind: 'fortnightly' }, at)).toBeNull();
    expect(nextRunAfter(undefined, at)).toBeNull();
  });

  it('throws a typed error when the cadence fields are out of range', () => {
    const at = new Date('2026-06-01T00:00:00.000Z');
    for (const cadence of [
      { kind: 'interval', everyMinutes: 0 },
      { kind: 'interval', everyMinutes: Number.NaN },
      { kind: 'daily', atHour: 24, atMinute: 0 },
      { kind: 'daily', atHour: 8, atMinute: 60 },
      { kind: 'weekly', dayOfWeek: 7, atHour: 9 },
      { kind: 'weekly', dayOfWeek: 1, atHour: 1.5 },
    ]) {
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
    const cadences = [
      { kind: 'interval', everyMinutes: 1 },
      { kind: 'daily', atHour: 2, atMinute: 30 },
      { kind: 'weekly', dayOfWeek: 0, atHour: 2 },
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
  it('is true only for interval, daily and weekly', () => {
    expect(isRecurringCadence({ kind: 'interval', everyMinutes: 5 })).toBe(true);
    expect(isRecurringCadence({ kind: 'daily', atHour: 1, atMinute: 0 })).toBe(true);
    expect(isRecurringCadence({ kind: 'weekly', dayOfWeek: 1, atHour: 1 })).toBe(true);
    expect(isRecurringCadence({ kind: 'manual' })).toBe(false);
    expect(isRecurringCadence(null)).toBe(false);
  });
});

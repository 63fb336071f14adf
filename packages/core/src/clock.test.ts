import { describe, expect, it } from 'vitest';
import { createManualClock, isoNow } from './clock.js';

describe('createManualClock', () => {
  it('stands still until set or advanced', () => {
    const clock = createManualClock('2026-04-21T06:00:00.000Z');
    expect(isoNow(clock)).toBe('2026-04-21T06:00:00.000Z');
    clock.advance(1500);
    expect(isoNow(clock)).toBe('2026-04-21T06:00:01.500Z');
    clock.set(new Date('2027-01-01T00:00:00.000Z'));
    expect(clock.now()).toBe(Date.parse('2027-01-01T00:00:00.000Z'));
  });
});

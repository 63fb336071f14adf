import { describe, expect, it } from 'vitest';
import { deriveIterationId } from './iteration-id.js';
import { canonicalInstant, toAgent, toMission } from './records.js';
import { nextRunAtAfterRun } from './write-back.js';

describe('canonicalInstant', () => {
  it('normalises zoned ISO stamps to the toISOString form', () => {
    expect(canonicalInstant('2026-04-15T00:00:00Z')).toBe('2026-04-15T00:00:00.000Z');
    expect(canonicalInstant('2026-04-15T02:00:00.5+02:00')).toBe('2026-04-15T00:00:00.500Z');
    expect(canonicalInstant('2026-04-15T02:00+0200')).toBe('2026-04-15T00:00:00.000Z');
    expect(canonicalInstant('2026-04-15T00:00:00.123456Z')).toBe('2026-04-15T00:00:00.123Z');
  });

  it('returns null for stamps without a zone or that are not ISO', () => {
    for (const value of ['2026-04-15', '2026-04-15T00:00:00', 'tomorrow', '', 42, null, '2026-13-45T00:00:00Z']) {
      expect(canonicalInstant(value)).toBeNull();
    }
  });
});

describe('canonicalInstant at the edges of the calendar', () => {
  it('returns null when an offset moves the instant out of four-digit years PostgreSQL accepts', () => {
    for (const value of ['9999-12-31T23:59:59.999-02:00', '0001-01-01T00:00:00+01:00', '0000-01-01T00:00:00Z']) {
      expect(canonicalInstant(value)).toBeNull();
    }
    expect(canonicalInstant('9999-12-31T21:00:00-02:00')).toBe('9999-12-31T23:00:00.000Z');
    expect(canonicalInstant('0001-01-01T01:00:00+01:00')).toBe('0001-01-01T00:00:00.000Z');
  });
});

describe('toMission', () => {
  it('never calls a record\'s own toString when fields hold objects', () => {
    const hostile = { toString: 1, valueOf: 1 };
    const mission = toMission('u-1', { id: 'm-1', title: hostile, objective: hostile, conceptMarkdown: [1], state: hostile, agentId: hostile });
    expect(mission).toMatchObject({ id: 'm-1', title: '', objective: '', conceptMarkdown: '', state: '' });
    expect(mission.agentId).toBeUndefined();
    const agent = toAgent('u-1', { id: 'a-1', name: hostile, role: hostile, state: hostile, maxConcurrentMissions: hostile });
    expect(agent).toMatchObject({ name: 'Unnamed', role: '', state: 'active' });
    expect(agent.maxConcurrentMissions).toBeNaN();
    expect(toAgent('u-1', { id: 'a-2', maxConcurrentMissions: '3' }).maxConcurrentMissions).toBe(3);
  });

  it('maps a snapshot record like upstream ServerMission when fields are missing or odd', () => {
    expect(toMission('u-1', { id: 'm-1', inputs: 'x', iterations: null, grant: null, agentId: 7, timezone: 'Europe/Paris' })).toEqual({
      id: 'm-1',
      userId: 'u-1',
      title: '',
      objective: '',
      conceptMarkdown: '',
      state: '',
      inputs: [],
      cadence: undefined,
      iterations: [],
      timezone: 'Europe/Paris',
    });
  });
});

describe('toAgent', () => {
  it('applies upstream defaults when an agent record is sparse', () => {
    expect(toAgent('u-1', { id: 'a-1', policy: [], maxTokensPerDay: '5' })).toEqual({
      id: 'a-1',
      userId: 'u-1',
      name: 'Unnamed',
      role: '',
      state: 'active',
      maxConcurrentMissions: 1,
    });
  });
});

describe('deriveIterationId', () => {
  it('derives the same version-5 UUID for the same mission and slot only', async () => {
    const id = await deriveIterationId('m-1', '2026-04-21T06:00:00.000Z');
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(await deriveIterationId('m-1', '2026-04-21T06:00:00.000Z')).toBe(id);
    expect(await deriveIterationId('m-1', '2026-04-21T07:00:00.000Z')).not.toBe(id);
    expect(await deriveIterationId('m-2', '2026-04-21T06:00:00.000Z')).not.toBe(id);
  });

  it('keeps the ids written so far (golden values)', async () => {
    expect(await deriveIterationId('m-1', '2026-04-21T06:00:00.000Z')).toBe('467e1d0e-f8c8-5a5d-9782-289a50a7211d');
    expect(await deriveIterationId('é🎉'.repeat(40), '2026-04-21T06:00:00.000Z')).toBe('83aa08b3-55ca-5031-b703-4da3020bd1c3');
  });
});

describe('nextRunAtAfterRun', () => {
  const now = Date.parse('2026-04-21T06:01:02.345Z');

  it('returns null for manual, unknown and invalid cadences', () => {
    const cadences = [{ kind: 'manual' }, { kind: 'cron', expression: '* * * *' }, { kind: 'hourly' }, { kind: 'interval', everyMinutes: 0 }, null];
    for (const cadence of cadences) {
      expect(nextRunAtAfterRun({ cadence }, now, 'Europe/Berlin')).toBeNull();
    }
  });

  it('returns the next matching minute of a cron cadence in the mission zone', () => {
    const cadence = { kind: 'cron', expression: '0 9 * * 1-5' };
    // Tuesday 2026-04-21 06:01Z is 08:01 in Berlin, 02:01 in New York.
    expect(nextRunAtAfterRun({ cadence }, now, 'Europe/Berlin')).toBe('2026-04-21T07:00:00.000Z');
    expect(nextRunAtAfterRun({ cadence, timezone: 'America/New_York' }, now, 'Europe/Berlin')).toBe('2026-04-21T13:00:00.000Z');
  });

  it('falls back to the default zone when the mission zone is unknown', () => {
    const cadence = { kind: 'daily', atHour: 8, atMinute: 0 };
    expect(nextRunAtAfterRun({ cadence, timezone: 'Mars/Olympus' }, now, 'Europe/Berlin')).toBe('2026-04-22T06:00:00.000Z');
    expect(nextRunAtAfterRun({ cadence, timezone: 'UTC' }, now, 'Europe/Berlin')).toBe('2026-04-21T08:00:00.000Z');
  });
});

describe('toMission with malformed entries', () => {
  const input = { module: 'notes', table: 'notes', id: 'n1' };
  const iteration = { id: 'it-1', startedAt: '2026-04-20T08:00:00.000Z', plan: [{ id: 's1', summary: 'x', status: 'approved' }], overallStatus: 'approved' };

  it('leaves out each bad entry of inputs and iterations and reports where and why when a device wrote them', () => {
    const reported: unknown[] = [];
    const mission = toMission(
      'u1',
      {
        id: 'm1',
        inputs: [null, input, [input], { ...input, id: 7 }],
        iterations: [null, { ...iteration, startedAt: { toString: 'x' } }, { ...iteration, plan: [null] }, { ...iteration, summary: null }, iteration],
      },
      (entry) => reported.push(entry),
    );
    expect(mission.inputs).toEqual([input]);
    expect(mission.iterations).toEqual([{ ...iteration, summary: null }, iteration]);
    expect(reported).toEqual([
      { field: 'inputs', index: 0, reason: 'not-object' },
      { field: 'inputs', index: 2, reason: 'not-object' },
      { field: 'inputs', index: 3, reason: 'field-type', key: 'id' },
      { field: 'iterations', index: 0, reason: 'not-object' },
      { field: 'iterations', index: 1, reason: 'field-type', key: 'startedAt' },
      { field: 'iterations', index: 2, reason: 'field-type', key: 'plan' },
    ]);
  });

  it('reports nothing when every entry is well formed', () => {
    const reported: unknown[] = [];
    toMission('u1', { id: 'm1', inputs: [input], iterations: [iteration, { id: 'it-2', startedAt: '2026-04-21T08:00:00.000Z', overallStatus: 'running' }] }, (entry) =>
      reported.push(entry),
    );
    expect(reported).toEqual([]);
  });
});

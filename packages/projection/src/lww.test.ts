import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type BadRowReason,
  type ChangeRow,
  type MergeState,
  applyChange,
  createMergeState,
  finishMerge,
  mergeChanges,
  mergeStateFromSnapshot,
  snapshotRecord,
} from './lww.js';

const T0 = '2026-04-15T00:00:00Z';
const T12 = '2026-04-15T12:00:00Z';

function row(partial: Partial<ChangeRow> & { op: string }): ChangeRow {
  return { recordId: 'r-1', data: null, fieldMeta: {}, createdAt: '2026-04-15T06:00:00.000Z', ...partial };
}

describe('mergeChanges', () => {
  it('keeps untouched fields and takes the newer role when an update follows an insert (docs/wire-contract.md#last-writer-wins-replay)', () => {
    const record = mergeChanges(
      [
        row({
          op: 'insert',
          data: { name: 'A', role: 'old role', state: 'active' },
          fieldMeta: { name: T0, role: T0, state: T0 },
        }),
        row({ op: 'update', data: { role: 'new role' }, fieldMeta: { role: T12 } }),
      ],
      'agent',
    );
    expect(record).toMatchObject({ id: 'r-1', name: 'A', role: 'new role', state: 'active' });
    expect(record?.__fieldMeta).toEqual({ name: T0, role: T12, state: T0 });
  });

  it('ignores an update whose stamp is older than the stored one (docs/wire-contract.md#last-writer-wins-replay)', () => {
    const record = mergeChanges(
      [
        row({ op: 'insert', data: { name: 'A' }, fieldMeta: { name: T12 } }),
        row({ op: 'update', data: { name: 'B' }, fieldMeta: { name: T0 } }),
      ],
      'agent',
    );
    expect(record?.name).toBe('A');
  });

  it('returns null when a delete follows an insert (docs/wire-contract.md#last-writer-wins-replay)', () => {
    expect(mergeChanges([row({ op: 'insert', data: { name: 'A' } }), row({ op: 'delete', data: {} })], 'mission')).toBeNull();
  });

  it('returns null for an agent inserted with deletedAt but keeps such a mission (docs/wire-contract.md#last-writer-wins-replay, docs/wire-contract.md#last-writer-wins-replay)', () => {
    const rows = [row({ op: 'insert', data: { name: 'A', deletedAt: T0 } })];
    expect(mergeChanges(rows, 'agent')).toBeNull();
    expect(mergeChanges(rows, 'record')).toBeNull();
    expect(mergeChanges(rows, 'mission')).toMatchObject({ name: 'A', deletedAt: T0 });
  });

  it('takes the new mission title when a later update changes it (docs/wire-contract.md#last-writer-wins-replay)', () => {
    const record = mergeChanges(
      [
        row({ op: 'insert', data: { title: 'old', state: 'active' }, fieldMeta: {} }),
        row({ op: 'update', data: { title: 'new' }, fieldMeta: { title: '2026-04-15T07:00:00.000Z' } }),
      ],
      'mission',
    );
    expect(record?.title).toBe('new');
  });

  it('never resurrects a record when rows follow its delete', () => {
    const record = mergeChanges(
      [row({ op: 'insert', data: { a: 1 } }), row({ op: 'delete' }), row({ op: 'insert', data: { a: 2 } })],
      'mission',
    );
    expect(record).toBeNull();
  });

  it('lets the newer row win when stamps tie', () => {
    const record = mergeChanges(
      [
        row({ op: 'insert', data: {} }),
        row({ op: 'update', data: { a: 1 }, fieldMeta: { a: T0 } }),
        row({ op: 'update', data: { a: 2 }, fieldMeta: { a: T0 } }),
      ],
      'mission',
    );
    expect(record?.a).toBe(2);
  });

  it('stamps fields without field_meta with the row created_at when later rows carry none', () => {
    const record = mergeChanges(
      [
        row({ op: 'insert', data: { a: 1 } }),
        row({ op: 'update', data: { a: 2 }, fieldMeta: null, createdAt: '2026-04-16T00:00:00.000Z' }),
        row({ op: 'update', data: { a: 3 }, fieldMeta: { a: '2026-04-15T23:59:59.999Z' } }),
      ],
      'mission',
    );
    expect(record?.a).toBe(2);
    expect(record?.__fieldMeta).toEqual({ a: '2026-04-16T00:00:00.000Z' });
  });

  it('compares stamps as strings, so a short-form stamp outranks the millisecond form (docs/wire-contract.md#last-writer-wins-replay)', () => {
    const record = mergeChanges(
      [
        row({ op: 'insert', data: {} }),
        row({ op: 'update', data: { a: 'short' }, fieldMeta: { a: '2026-04-15T00:00:00Z' } }),
        row({ op: 'update', data: { a: 'long' }, fieldMeta: { a: '2026-04-15T00:00:00.000Z' } }),
      ],
      'mission',
    );
    expect(record?.a).toBe('short');
  });

  it('lets data.id override the record id and takes a null-data first row as the bare id', () => {
    expect(mergeChanges([row({ op: 'insert', data: { id: 'other' } })], 'record')).toEqual({ id: 'other' });
    expect(mergeChanges([row({ op: 'update', data: null })], 'record')).toEqual({ id: 'r-1' });
    expect(mergeChanges([], 'mission')).toBeNull();
  });

  it('skips rows with non-object data and reports them when the log holds bad rows', () => {
    const reasons: BadRowReason[] = [];
    const record = mergeChanges(
      [
        row({ op: 'insert', data: { a: 1 } }),
        row({ op: 'update', data: [1, 2] }),
        row({ op: 'update', data: 'text' }),
        row({ op: 'update', data: { a: 2 }, fieldMeta: 'nope' }),
        row({ op: 'update', data: { b: 3 }, fieldMeta: { b: 42 } }),
        row({ op: 'upsert', data: { a: 9 } }),
      ],
      'record',
      (_row, reason) => reasons.push(reason),
    );
    expect(record).toEqual({ id: 'r-1', a: 2, b: 3 });
    expect(reasons).toEqual(['data-not-object', 'data-not-object', 'field-meta-not-object', 'stamp-not-string', 'unknown-op']);
  });

  it('drops __fieldMeta from the record variant only', () => {
    const rows = [row({ op: 'insert', data: { a: 1 }, fieldMeta: { a: T0 } })];
    expect(mergeChanges(rows, 'record')).toEqual({ id: 'r-1', a: 1 });
    expect(mergeChanges(rows, 'mission')).toEqual({ id: 'r-1', a: 1, __fieldMeta: { a: T0 } });
  });
});

// Stamps from a small alphabet so ties, out-of-order clients and the short form all occur.
const stampArbitrary = fc.constantFrom(
  '2026-04-15T00:00:00Z',
  '2026-04-15T00:00:00.000Z',
  '2026-04-15T00:00:01.000Z',
  '2026-04-15T00:00:02.500Z',
  '2026-04-16T00:00:00.000Z',
);
const fieldArbitrary = fc.constantFrom('title', 'state', 'nextRunAt', 'iterations', 'deletedAt');
const valueArbitrary = fc.oneof(fc.string({ maxLength: 4 }), fc.integer(), fc.constant(null), fc.array(fc.integer(), { maxLength: 2 }));
const rowArbitrary: fc.Arbitrary<ChangeRow> = fc
  .record({
    op: fc.constantFrom('insert', 'update', 'update', 'update', 'update', 'delete'),
    data: fc.option(fc.dictionary(fieldArbitrary, valueArbitrary, { maxKeys: 4 }), { freq: 8 }),
    stamps: fc.dictionary(fieldArbitrary, stampArbitrary, { maxKeys: 4 }),
    createdAt: stampArbitrary,
  })
  .map(({ op, data, stamps, createdAt }) => ({ op, recordId: 'm-1', data, fieldMeta: stamps, createdAt }));
const logArbitrary = fc.array(rowArbitrary, { maxLength: 25 });

/** What a snapshot table holds after a batch: the stored record through a JSON round trip. */
function persist(state: MergeState): MergeState | 'tombstone' {
  if (state.deleted) return 'tombstone';
  const stored = snapshotRecord(state);
  if (stored === null) return createMergeState();
  return mergeStateFromSnapshot('m-1', JSON.parse(JSON.stringify(stored)));
}

describe('mergeChanges properties', () => {
  it('converges to the same record when a log is split into batches of any sizes', () => {
    fc.assert(
      fc.property(logArbitrary, fc.array(fc.integer({ min: 1, max: 6 }), { maxLength: 30 }), (log, sizes) => {
        const whole = mergeChanges(log, 'mission');
        let stored: MergeState | 'tombstone' = createMergeState();
        let position = 0;
        for (const size of [...sizes, log.length]) {
          if (position >= log.length || stored === 'tombstone') break;
          const state: MergeState = stored;
          for (const change of log.slice(position, position + size)) applyChange(state, change);
          position += size;
          stored = persist(state);
        }
        const batched = stored === 'tombstone' ? null : finishMerge(stored, 'mission');
        expect(JSON.parse(JSON.stringify(batched))).toEqual(JSON.parse(JSON.stringify(whole)));
      }),
    );
  });

  it('changes nothing when a batch is re-applied to a record that existed before it', () => {
    fc.assert(
      fc.property(logArbitrary, logArbitrary, (prefix, batch) => {
        const state = createMergeState();
        applyChange(state, { op: 'insert', recordId: 'm-1', data: { title: 'seed' }, fieldMeta: {}, createdAt: '2026-04-14T00:00:00.000Z' });
        for (const change of [...prefix, ...batch]) applyChange(state, change);
        const once = snapshotRecord(state);
        for (const change of batch) applyChange(state, change);
        expect(snapshotRecord(state)).toEqual(once);
      }),
    );
  });

  it('yields the same record when a row after the first is delivered twice in a row', () => {
    const seed: ChangeRow = { op: 'insert', recordId: 'm-1', data: { title: 'seed' }, fieldMeta: {}, createdAt: '2026-04-14T00:00:00.000Z' };
    fc.assert(
      fc.property(logArbitrary, fc.nat(), (log, pick) => {
        fc.pre(log.length > 0);
        const index = pick % log.length;
        const doubled = [seed, ...log.slice(0, index + 1), log[index]!, ...log.slice(index + 1)];
        expect(mergeChanges(doubled, 'agent')).toEqual(mergeChanges([seed, ...log], 'agent'));
      }),
    );
  });
});

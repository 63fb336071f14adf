import { createEventBus } from '@mana-ai/core';
import { type Projection, type ProjectionEvents, type RowSkippedEvent, createProjection } from '@mana-ai/projection';
import fc from 'fast-check';
import type { Sql } from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BAD_ROW_REASONS, type FuzzRecord, fuzzRecords } from '../support/fuzz-rows.js';
import {
  type LogRow,
  type TestDatabase,
  agentRecord,
  connectAsRunner,
  createTestDatabase,
  insertLogRows,
  missionRecord,
} from '../support/security-database.js';

// Fixed seed and bounded runs: the suite is deterministic and quick (each run is a few inserts and
// one refresh against the real database).
const SEED = 20_261_121;
const RUNS = 100;

let db: TestDatabase;
let runner: Sql;
let projection: Projection;
const skipped: RowSkippedEvent[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  runner = await connectAsRunner(db);
  const events = createEventBus<ProjectionEvents>();
  events.on('row.skipped', (event) => void skipped.push(event));
  projection = createProjection({ sql: runner, events });
});
afterAll(() => db.drop());

async function snapshotExists(table: FuzzRecord['table'], userId: string, recordId: string): Promise<boolean> {
  const rows =
    table === 'aiMissions'
      ? await db.sql`SELECT 1 FROM mana_ai.mission_snapshots WHERE user_id = ${userId} AND mission_id = ${recordId}`
      : await db.sql`SELECT 1 FROM mana_ai.agent_snapshots WHERE user_id = ${userId} AND agent_id = ${recordId}`;
  return rows.length === 1;
}

/** Drains whatever earlier tests left in the feed so each check sees only its own rows. */
async function drain(): Promise<void> {
  await projection.refresh();
  skipped.length = 0;
}

describe('snapshot refresh under fuzzed sync_changes rows', () => {
  let run = 0;
  const reasonsSeen = new Set<string>();

  it('never throws, reports each malformed row as row.skipped and still applies a later valid mission when rows are malformed', async () => {
    await drain();
    await fc.assert(
      fc.asyncProperty(fuzzRecords, async (records) => {
        run += 1;
        const userId = `u-fuzz-${run}`;
        const validUser = `u-valid-${run}`;
        const validMission = `m-valid-${run}`;
        const rows: LogRow[] = [];
        const expectations: { row: FuzzRecord['rows'][number]; index: number }[] = [];
        records.forEach((record, r) => {
          const recordId = `${record.table === 'aiMissions' ? 'm' : 'a'}-${run}-${r}`;
          if (record.validFirst) {
            const data = record.table === 'aiMissions' ? missionRecord(recordId) : agentRecord(recordId);
            rows.push({ userId, recordId, table: record.table, dataJson: JSON.stringify(data) });
          }
          for (const row of record.rows) {
            expectations.push({ row, index: rows.length });
            rows.push({ userId, recordId, table: row.table, op: row.op, dataJson: row.dataJson, fieldMetaJson: row.fieldMetaJson });
          }
        });
        rows.push({ userId: validUser, recordId: validMission, dataJson: JSON.stringify(missionRecord(validMission)) });
        const ids = await insertLogRows(db.sql, rows);
        skipped.length = 0;

        const result = await projection.refresh();

        expect(result.completed).toBe(true);
        expect(result.rowsRead).toBe(rows.length);
        expect(result.badRows).toBe(skipped.length);
        const runIds = new Set(ids);
        for (const event of skipped) {
          reasonsSeen.add(event.reason);
          expect(runIds.has(event.changeId)).toBe(true);
          expect(BAD_ROW_REASONS).toContain(event.reason);
          expect(event.userId).toBe(userId);
        }
        for (const { row, index } of expectations) {
          const reasons = skipped.filter((event) => event.changeId === ids[index]).map((event) => event.reason);
          if (row.dataKind === 'non-object') expect(reasons).toEqual(['data-not-object']);
          else if (row.fieldMetaKind === 'non-object') expect(reasons).toContain('field-meta-not-object');
          else if (row.fieldMetaKind === 'null') expect(reasons).toEqual([]);
          else if (Object.values(JSON.parse(row.fieldMetaJson) as object).every((stamp) => typeof stamp === 'string')) {
            expect(reasons).toEqual([]);
          }
        }
        // A record whose every row was skipped leaves no snapshot; any other record has one.
        for (const [r, record] of records.entries()) {
          const recordId = `${record.table === 'aiMissions' ? 'm' : 'a'}-${run}-${r}`;
          const applicable = record.validFirst || record.rows.some((row) => row.dataKind !== 'non-object');
          expect(await snapshotExists(record.table, userId, recordId)).toBe(applicable);
        }
        expect(await snapshotExists('aiMissions', validUser, validMission)).toBe(true);

        // The read side copes with whatever was projected, and the valid mission is claimable.
        await projection.listUserMissions(userId);
        await projection.loadAgents(userId);
        const claimed = await projection.claimDue({ owner: `fuzz-${run}`, limit: 10_000 });
        expect(claimed.map((claim) => claim.mission.id)).toContain(validMission);
        await projection.release(`fuzz-${run}`);
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    // The generator really produced every kind of malformed row the log can hold.
    expect([...reasonsSeen].sort()).toEqual(['data-not-object', 'field-meta-not-object', 'stamp-not-string']);
  });

  it('keeps the last good value of a field when a wrongly typed update arrives with an older stamp', async () => {
    await drain();
    const stamps = JSON.stringify({ title: '2026-04-20T12:00:00.000Z', objective: '2026-04-20T12:00:00.000Z' });
    await insertLogRows(db.sql, [
      { userId: 'u-old', recordId: 'm-old', dataJson: JSON.stringify(missionRecord('m-old', { title: 'Gut', objective: 'Ziel' })), fieldMetaJson: stamps },
      { userId: 'u-old', recordId: 'm-old', op: 'update', dataJson: '{"title": 42}', fieldMetaJson: '{"title": "2026-04-20T11:59:59.999Z"}' },
      // Stamps compare as text (docs/wire-contract.md#last-writer-wins-replay, like the webapp): this offset stamp is an earlier
      // instant but the later string, so it wins.
      { userId: 'u-old', recordId: 'm-old', op: 'update', dataJson: '{"objective": ["x"]}', fieldMetaJson: '{"objective": "2026-04-20T13:30:00+02:00"}' },
      { userId: 'u-old', recordId: 'm-old', op: 'update', dataJson: '{"iterations": {"not": "an array"}}', fieldMetaJson: '{"iterations": "zzz"}' },
    ]);
    const result = await projection.refresh();
    expect(result.badRows).toBe(0);
    const [overview] = await projection.listUserMissions('u-old');
    expect(overview?.mission.title).toBe('Gut');
    // A wrongly typed field that wins LWW is stored as sent and read as missing, never thrown on.
    expect(overview?.mission.objective).toBe('');
    expect(overview?.mission.iterations).toEqual([]);
  });

  it('tolerates 100,000-element arrays and objects nested 1,000 deep when a client sends them', async () => {
    await drain();
    const deep = `${'{"a":'.repeat(1000)}1${'}'.repeat(1000)}`;
    const base = JSON.stringify(missionRecord('m-huge', { inputs: Array.from({ length: 100_000 }, (_, i) => ({ module: 'notes', table: 'notes', id: `n${i}` })) }));
    await insertLogRows(db.sql, [
      { userId: 'u-huge', recordId: 'm-huge', dataJson: base },
      { userId: 'u-huge', recordId: 'm-huge', op: 'update', dataJson: `{"policy": ${deep}, "iterations": ${JSON.stringify(Array.from({ length: 100_000 }, (_, i) => i))}}` },
      { userId: 'u-huge', recordId: 'a-deep', table: 'agents', dataJson: `{"name": "Tief", "policy": ${deep}}` },
      { userId: 'u-after', recordId: 'm-after', dataJson: JSON.stringify(missionRecord('m-after')) },
    ]);
    const result = await projection.refresh();
    expect(result).toMatchObject({ completed: true, rowsRead: 4, badRows: 0 });
    const [huge] = await projection.listUserMissions('u-huge');
    expect(huge?.mission.inputs).toHaveLength(100_000);
    // Numbers are no iterations: each is left out as malformed (the stored record keeps them).
    expect(huge?.mission.iterations).toEqual([]);
    expect((await projection.loadAgents('u-huge')).map((agent) => agent.name)).toEqual(['Tief']);
    const claimed = await projection.claimDue({ owner: 'huge', limit: 10_000 });
    expect(claimed.map((claim) => claim.mission.id)).toEqual(expect.arrayContaining(['m-after', 'm-huge']));
    await projection.release('huge');
  });

  it('stores nextRunAt stamps with offsets by instant and leaves unparseable ones never due', async () => {
    await drain();
    const cases: [string, unknown, string | null][] = [
      ['m-offset', '2026-04-21T08:00:00+02:00', '2026-04-21T06:00:00.000Z'],
      ['m-compact-offset', '2026-04-21T08:00+0200', '2026-04-21T06:00:00.000Z'],
      ['m-late', '9990-12-31T23:59:59.999Z', '9990-12-31T23:59:59.999Z'],
      ['m-garbage', 'morgen früh', null],
      ['m-number', 1_776_664_800_000, null],
      ['m-empty', '', null],
      ['m-object', { at: '2026-04-21T06:00:00.000Z' }, null],
    ];
    await insertLogRows(
      db.sql,
      cases.map(([id, nextRunAt]) => ({ userId: 'u-times', recordId: id, dataJson: JSON.stringify(missionRecord(id, { nextRunAt })) })),
    );
    expect((await projection.refresh()).badRows).toBe(0);
    const due = new Map((await projection.listUserMissions('u-times')).map((overview) => [overview.mission.id, overview.dueAt]));
    for (const [id, , expected] of cases) expect({ id, dueAt: due.get(id) }).toEqual({ id, dueAt: expected });
    const claimed = await projection.claimDue({ owner: 'times', limit: 10_000 });
    const mine = claimed.filter((claim) => claim.mission.userId === 'u-times').map((claim) => claim.mission.id);
    expect(mine.sort()).toEqual(['m-compact-offset', 'm-offset']);
    await projection.release('times');
  });

  it('tombstones a record whose delete row carries garbage data and ignores its later rows', async () => {
    await drain();
    await insertLogRows(db.sql, [
      { userId: 'u-del', recordId: 'm-del', dataJson: JSON.stringify(missionRecord('m-del')) },
      { userId: 'u-del', recordId: 'm-del', op: 'delete', dataJson: '[1, 2, 3]', fieldMetaJson: '"garbage"' },
      { userId: 'u-del', recordId: 'm-del', op: 'update', dataJson: '"still garbage"' },
    ]);
    const result = await projection.refresh();
    expect(result).toMatchObject({ badRows: 0, rowsIgnored: 1 });
    expect(await snapshotExists('aiMissions', 'u-del', 'm-del')).toBe(false);
    expect(skipped).toEqual([]);
  });

  it('keeps garbage enc:1: values as opaque text when they are synced', async () => {
    await drain();
    const garbage = ['enc:1:', 'enc:1:not-base64!!', 'enc:1:AAAA', 'enc:1:AAAAAAAAAAAAAAAA.', `enc:1:${'A'.repeat(10_000)}.${'B'.repeat(10_000)}`];
    await insertLogRows(
      db.sql,
      garbage.map((value, i) => ({
        userId: 'u-enc',
        recordId: `m-enc-${i}`,
        dataJson: JSON.stringify(missionRecord(`m-enc-${i}`, { title: value, objective: value, inputs: [{ module: 'notes', table: 'notes', id: value }] })),
      })),
    );
    expect((await projection.refresh()).badRows).toBe(0);
    const titles = (await projection.listUserMissions('u-enc')).map((overview) => overview.mission.title);
    expect(titles).toEqual(garbage);
  });
});

describe('snapshot refresh on a log without the op check', () => {
  // mana-sync's DDL has CHECK (op IN …); an older or hand-made table may not. The projection must
  // still skip unknown ops with a typed event instead of stopping.
  let loose: TestDatabase;
  let looseProjection: Projection;
  const looseSkipped: RowSkippedEvent[] = [];

  beforeAll(async () => {
    loose = await createTestDatabase();
    const constraints = await loose.sql<{ conname: string }[]>`
      SELECT conname FROM pg_constraint WHERE conrelid = 'public.sync_changes'::regclass AND contype = 'c'`;
    for (const { conname } of constraints) await loose.sql.unsafe(`ALTER TABLE public.sync_changes DROP CONSTRAINT "${conname}"`);
    const events = createEventBus<ProjectionEvents>();
    events.on('row.skipped', (event) => void looseSkipped.push(event));
    looseProjection = createProjection({ sql: await connectAsRunner(loose), events });
  });
  afterAll(() => loose.drop());

  it('skips unknown ops with unknown-op and applies the rows around them', async () => {
    const ops = ['upsert', 'DELETE', '', 'insert ', 'patch'];
    const ids = await insertLogRows(loose.sql, [
      { userId: 'u-op', recordId: 'm-op', dataJson: JSON.stringify(missionRecord('m-op', { title: 'vorher' })) },
      ...ops.map((op) => ({ userId: 'u-op', recordId: 'm-op', op, dataJson: '{"title": "nie"}' })),
      { userId: 'u-op', recordId: 'a-op', table: 'agents', op: 'remove', dataJson: '{"name": "nie"}' },
      { userId: 'u-op', recordId: 'm-op', op: 'update', dataJson: '{"objective": "nachher"}' },
    ]);
    const result = await looseProjection.refresh();
    expect(result.badRows).toBe(ops.length + 1);
    expect(looseSkipped.map((event) => [event.changeId, event.reason])).toEqual(ids.slice(1, ops.length + 2).map((id) => [id, 'unknown-op']));
    const [overview] = await looseProjection.listUserMissions('u-op');
    expect(overview?.mission).toMatchObject({ title: 'vorher', objective: 'nachher' });
    expect(await looseProjection.loadAgents('u-op')).toEqual([]);
  });
});

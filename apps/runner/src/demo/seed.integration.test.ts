import { createManualClock, type MissionGrant } from '@mana-ai/core';
import { createGrantUnwrapperFromPem, decryptValue } from '@mana-ai/crypto';
import { generateTestKeyPair, type TestKeyPair, testMasterKey } from '@mana-ai/crypto/testing';
import { type TestDatabase, createTestDatabase } from '@mana-ai/test-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebappClient, seedMissionWithNote, type WebappClient } from './seed.js';

const NOW = '2026-04-20T08:00:00.000Z';
const USER = 'u-seed';

interface Row {
  app_id: string;
  table_name: string;
  record_id: string;
  user_id: string;
  space_id: string | null;
  op: string;
  data: Record<string, unknown> | null;
  field_meta: Record<string, string> | null;
  client_id: string;
  schema_version: number;
  actor: unknown;
  origin: string | null;
}

let db: TestDatabase;
let keys: TestKeyPair;
let client: WebappClient;
const clock = createManualClock(NOW);

async function rowsOf(recordId: string): Promise<Row[]> {
  return db.sql<Row[]>`
    SELECT app_id, table_name, record_id, user_id, space_id, op, data, field_meta, client_id, schema_version, actor, origin
    FROM sync_changes WHERE record_id = ${recordId} ORDER BY created_at, id`;
}

beforeAll(async () => {
  [db, keys] = await Promise.all([createTestDatabase(), generateTestKeyPair()]);
  client = createWebappClient(db.sql, { userId: USER, clientId: 'tab-1', spaceId: 'space-1', clock });
});
afterAll(() => db.drop());

describe('createWebappClient', () => {
  it('stores an insert with the whole record, empty field_meta and the user actor when a record is created', async () => {
    await client.insert('todo', 'tasks', { id: 't-insert', title: 'Einkaufen', userId: 'someone-else' });
    expect(await rowsOf('t-insert')).toEqual([
      {
        app_id: 'todo',
        table_name: 'tasks',
        record_id: 't-insert',
        user_id: USER,
        space_id: 'space-1',
        op: 'insert',
        data: { id: 't-insert', createdAt: NOW, title: 'Einkaufen', userId: USER, spaceId: 'space-1' },
        field_meta: {},
        client_id: 'tab-1',
        schema_version: 1,
        actor: { kind: 'user', principalId: USER, displayName: 'Du' },
        origin: 'user',
      },
    ]);
  });

  it('stamps every changed field, drops immutable ones and sends undefined as null when a record is updated', async () => {
    clock.set('2026-04-20T08:00:05.123Z');
    await client.update('ai', 'aiMissions', 'm-update', { cadence: { kind: 'interval', everyMinutes: 60 }, grant: undefined, userId: 'x', spaceId: 'y' });
    const [row] = await rowsOf('m-update');
    expect(row).toMatchObject({
      op: 'update',
      data: { cadence: { kind: 'interval', everyMinutes: 60 }, grant: null },
      field_meta: { cadence: '2026-04-20T08:00:05.123Z', grant: '2026-04-20T08:00:05.123Z' },
      space_id: 'space-1',
    });
  });

  it('stores only deletedAt when a record is soft-deleted', async () => {
    clock.set('2026-04-22T10:00:00.000Z');
    await client.softDelete('notes', 'notes', 'n-delete');
    const [row] = await rowsOf('n-delete');
    expect(row).toMatchObject({ op: 'delete', data: { deletedAt: '2026-04-22T10:00:00.000Z' }, field_meta: {} });
  });
});

describe('seedMissionWithNote', () => {
  it('writes agent, encrypted note, mission and grant in webapp order when a mission is seeded', async () => {
    clock.set(NOW);
    const seeded = await seedMissionWithNote(client, {
      publicKeyPem: keys.publicKeyPem,
      masterKey: testMasterKey(),
      agent: { name: 'Planer' },
      mission: { title: 'Woche', objective: 'Plane die Woche', cadence: { kind: 'daily', atHour: 8, atMinute: 0 }, nextRunAt: NOW },
      note: { title: 'Liste', content: 'Milch' },
    });
    const log = await db.sql<{ table_name: string; op: string; record_id: string }[]>`
      SELECT table_name, op, record_id FROM sync_changes
      WHERE record_id IN (${seeded.agentId}, ${seeded.noteId}, ${seeded.missionId}) ORDER BY created_at, id`;
    expect(log).toEqual([
      { table_name: 'agents', op: 'insert', record_id: seeded.agentId },
      { table_name: 'notes', op: 'insert', record_id: seeded.noteId },
      { table_name: 'aiMissions', op: 'insert', record_id: seeded.missionId },
      { table_name: 'aiMissions', op: 'update', record_id: seeded.missionId },
    ]);

    const [missionInsert, grantUpdate] = await rowsOf(seeded.missionId);
    expect(missionInsert!.data).toMatchObject({
      inputs: [{ module: 'notes', table: 'notes', id: seeded.noteId }],
      agentId: seeded.agentId,
      state: 'active',
      iterations: [],
    });
    const grant = grantUpdate!.data!.grant as MissionGrant;
    expect(Object.keys(grantUpdate!.field_meta!)).toEqual(['grant']);
    expect(grant.derivation).toEqual({ version: 'v1', missionId: seeded.missionId, tables: ['notes'], recordIds: [`notes:${seeded.noteId}`] });

    // The runner's side: the grant unwraps for this mission and its key opens the note's fields.
    const unwrapper = await createGrantUnwrapperFromPem({ clock }, { privateKeyPem: keys.privateKeyPem });
    const unwrapped = await unwrapper.unwrap(grant, { missionId: seeded.missionId });
    if (!unwrapped.ok) throw new Error(`grant did not unwrap: ${unwrapped.reason}`);
    const [note] = await rowsOf(seeded.noteId);
    expect(note!.data!.content).toMatch(/^enc:1:/);
    expect(await decryptValue(unwrapped.key, note!.data!.title)).toBe('Liste');
    expect(await decryptValue(unwrapped.key, note!.data!.content)).toBe('Milch');
  });
});

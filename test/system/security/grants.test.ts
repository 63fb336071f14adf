import { type MissionGrant, type MissionInputRef, createManualClock } from '@mana-ai/core';
import { createGrantUnwrapperFromPem } from '@mana-ai/crypto';
import { type Projection, createProjection } from '@mana-ai/projection';
import type { Sql } from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type CapturedResolvers, type GrantFixture, SECRET_TEXT, captureResolvers, seedGrantedNote } from '../support/security-crypto.js';
import { type TestDatabase, connectAsRunner, createTestDatabase } from '../support/security-database.js';

const NOW = '2026-05-01T00:00:00.000Z';
const USER = 'u-grant';
const MISSION_A = 'm-a';
const MISSION_B = 'm-b';
const clock = createManualClock(NOW);
const NOTE: MissionInputRef = { module: 'notes', table: 'notes', id: 'n1' };
const TASK: MissionInputRef = { module: 'todo', table: 'tasks', id: 't1' };

let db: TestDatabase;
let runner: Sql;
let projection: Projection;
let fixture: GrantFixture;
let subject: CapturedResolvers;

async function auditRows(): Promise<Record<string, unknown>[]> {
  return db.sql`SELECT user_id, mission_id, table_name, record_id, status, reason FROM mana_ai.decrypt_audit ORDER BY id`;
}

// A grant whose plaintext derivation was edited to name mission B still unwraps for B (the wrap does
// not authenticate the derivation): reported as a protocol finding, kept out until it is decided.
function withDerivation(grant: MissionGrant, change: Record<string, unknown>): unknown {
  return { ...grant, derivation: { ...grant.derivation, ...change } };
}

beforeAll(async () => {
  db = await createTestDatabase();
  runner = await connectAsRunner(db);
  projection = createProjection({ sql: runner });
  fixture = await seedGrantedNote(db.sql, clock, USER, MISSION_A);
  subject = await captureResolvers(runner, projection, clock, fixture.keys.privateKeyPem);
});
afterAll(() => db.drop());
beforeEach(async () => {
  clock.set(NOW);
  await db.sql`TRUNCATE mana_ai.decrypt_audit`;
  subject.events.length = 0;
});

describe('grants bound to a mission', () => {
  it('decrypts the granted note and audits ok when the grant belongs to the mission', async () => {
    const before = subject.decryptCalls();
    const resolved = await subject.resolvers.resolve({ userId: USER, missionId: MISSION_A, iterationId: 'it-a', grant: fixture.grant, inputs: [NOTE] });
    expect(resolved).toEqual([{ id: 'n1', module: 'notes', table: 'notes', title: SECRET_TEXT.title, content: SECRET_TEXT.content }]);
    expect(subject.decryptCalls()).toBeGreaterThan(before);
    expect(await auditRows()).toEqual([{ user_id: USER, mission_id: MISSION_A, table_name: 'notes', record_id: 'n1', status: 'ok', reason: null }]);
  });

  it('rejects a grant of mission A presented for mission B with mission-mismatch and never decrypts', async () => {
    const unwrapper = await createGrantUnwrapperFromPem({ clock }, { privateKeyPem: fixture.keys.privateKeyPem });
    expect(await unwrapper.unwrap(fixture.grant, { missionId: MISSION_B })).toEqual({ ok: false, reason: 'mission-mismatch' });

    const before = subject.decryptCalls();
    const resolved = await subject.resolvers.resolve({ userId: USER, missionId: MISSION_B, iterationId: 'it-b', grant: fixture.grant, inputs: [NOTE, TASK] });
    expect(resolved).toEqual([]);
    expect(subject.decryptCalls()).toBe(before);
    expect(subject.events).toContainEqual({ name: 'grant.skipped', payload: { missionId: MISSION_B, reason: 'mission-mismatch' } });
    expect(subject.events.some((event) => event.name === 'decrypt.succeeded')).toBe(false);
    // The attempt is audited for each encrypted input asked for, so the user's audit tab shows it; nothing is read.
    const rows = await auditRows();
    const row = (table: string, record: string) => ({ user_id: USER, mission_id: MISSION_B, table_name: table, record_id: record, status: 'scope-violation', reason: 'mission-mismatch' });
    expect(rows).toHaveLength(2);
    expect(rows).toEqual(expect.arrayContaining([row('notes', 'n1'), row('tasks', 't1')]));
  });

  it('skips an expired grant with expired and never decrypts', async () => {
    clock.set(Date.parse(fixture.grant.expiresAt) + 1);
    const before = subject.decryptCalls();
    expect(await subject.resolvers.resolve({ userId: USER, missionId: MISSION_A, grant: fixture.grant, inputs: [NOTE] })).toEqual([]);
    expect(subject.decryptCalls()).toBe(before);
    expect(subject.events).toContainEqual({ name: 'grant.skipped', payload: { missionId: MISSION_A, reason: 'expired' } });
  });

  it('skips a grant of another version, an unparseable expiry or a foreign wrap without decrypting', async () => {
    const cases: [unknown, string][] = [
      [withDerivation(fixture.grant, { version: 'v2' }), 'unsupported-version'],
      [withDerivation(fixture.grant, { version: 'V1' }), 'unsupported-version'],
      [{ ...fixture.grant, expiresAt: 'never' }, 'expired'],
      [{ ...fixture.grant, wrappedKey: Buffer.alloc(256, 7).toString('base64') }, 'wrap-rejected'],
      [{ ...fixture.grant, wrappedKey: 'enc:1:not-base64' }, 'malformed'],
      ['a grant as a string', 'malformed'],
      [{ ...fixture.grant, derivation: null }, 'malformed'],
    ];
    const before = subject.decryptCalls();
    for (const [grant, reason] of cases) {
      subject.events.length = 0;
      expect(await subject.resolvers.resolve({ userId: USER, missionId: MISSION_A, grant, inputs: [NOTE] })).toEqual([]);
      expect({ reason, events: subject.events }).toEqual({ reason, events: [{ name: 'grant.skipped', payload: { missionId: MISSION_A, reason } }] });
    }
    expect(subject.decryptCalls()).toBe(before);
    expect(await auditRows()).toEqual([]);
  });

  it('refuses a table or record outside the grant with a scope-violation audit row and no decrypt', async () => {
    const before = subject.decryptCalls();
    const inputs: MissionInputRef[] = [TASK, { module: 'notes', table: 'notes', id: 'n-not-granted' }];
    expect(await subject.resolvers.resolve({ userId: USER, missionId: MISSION_A, iterationId: 'it-s', grant: fixture.grant, inputs })).toEqual([]);
    expect(subject.decryptCalls()).toBe(before);
    // Inputs resolve concurrently (a few at a time): rows and events in any order.
    const rows = await auditRows();
    expect(rows).toHaveLength(2);
    expect(rows).toEqual(
      expect.arrayContaining([
        { user_id: USER, mission_id: MISSION_A, table_name: 'tasks', record_id: 't1', status: 'scope-violation', reason: 'table-not-in-grant' },
        { user_id: USER, mission_id: MISSION_A, table_name: 'notes', record_id: 'n-not-granted', status: 'scope-violation', reason: 'record-not-in-grant-allowlist' },
      ]),
    );
    const violations = subject.events.filter((event) => event.name === 'grant.scope-violation').map((event) => event.payload);
    expect(violations).toHaveLength(2);
    expect(violations).toEqual(
      expect.arrayContaining([
        { missionId: MISSION_A, table: 'tasks', reason: 'table-not-in-grant' },
        { missionId: MISSION_A, table: 'notes', reason: 'record-not-in-grant-allowlist' },
      ]),
    );
  });

  it('decrypts nothing of another user even when the grant and record ids match', async () => {
    const resolved = await subject.resolvers.resolve({ userId: 'u-intruder', missionId: MISSION_A, grant: fixture.grant, inputs: [NOTE] });
    expect(resolved).toEqual([]);
    expect(subject.events.some((event) => event.name === 'decrypt.succeeded')).toBe(false);
  });
});

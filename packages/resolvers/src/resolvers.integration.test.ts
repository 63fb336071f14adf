import {
  type GrantDerivation,
  type Mission,
  type MissionGrant,
  type MissionInputRef,
  type WebCryptoKey,
  createEventBus,
  createManualClock,
} from '@mana-ai/core';
import {
  createGrantIssuer,
  createGrantUnwrapperFromPem,
  decryptValue,
  deriveMissionDataKey,
  encryptValue,
  importAesKey,
} from '@mana-ai/crypto';
import { type TestKeyPair, generateTestKeyPair, testMasterKey } from '@mana-ai/crypto/testing';
import { type TestDatabase, type TestLoginRole, createTestDatabase } from '@mana-ai/test-postgres';
import type { Sql } from 'postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createCaptureLogger } from '../test/capture-logger.js';
import { appendChanges, createTestReplayRecord } from '../test/sync-log.js';
import type { ResolverEvents } from './events.js';
import { type InputResolvers, createInputResolvers } from './input-resolvers.js';
import { createInputsPort } from './inputs-port.js';
import type { ResolverCrypto } from './ports.js';
import { AUDIT_WRITER_PRIVILEGES } from '../test/audit-writer.js';

const NOW = '2026-04-20T08:00:00.000Z';
const USER = 'user-1';
const MISSION = 'mission-1';
const ROLE = `resolvers_${Math.random().toString(36).slice(2, 10)}`;
const SECRETS = {
  noteTitle: 'Private Titel',
  noteBody: 'geheimer inhalt',
  noteBodyLater: 'neuer geheimer inhalt',
  task: 'Steuererklaerung abgeben',
  taskDescription: 'Belege sammeln',
  event: 'Zahnarzt Termin',
  location: 'Praxis Mitte',
  journal: 'Heute war ein guter Tag',
  kontext: 'Ich arbeite als Tischlerin',
  about: 'Ich mag Berge',
  leisure: 'Klettern am Wochenende',
  wrongKey: 'mit falschem Schluessel',
  tampered: 'manipuliert',
  outside: 'nicht freigegeben',
};

const granted: MissionInputRef[] = [
  { module: 'notes', table: 'notes', id: 'n1' },
  { module: 'todo', table: 'tasks', id: 't1' },
  { module: 'calendar', table: 'events', id: 'e1' },
  { module: 'journal', table: 'journalEntries', id: 'j1' },
  { module: 'kontext', table: 'kontextDoc', id: 'k1' },
  { module: 'profile', table: 'userContext', id: 'singleton' },
];
const extraIds = ['notes:n-wrong-key', 'notes:n-tampered', 'notes:n-malformed', 'notes:n-absent', 'notes:n-deleted'];

let db: TestDatabase;
let role: TestLoginRole;
let pair: TestKeyPair;
let otherPair: TestKeyPair;
let grant: MissionGrant;
const clock = createManualClock(NOW);
const logger = createCaptureLogger();
const events = createEventBus<ResolverEvents>();
const emitted: { name: string; payload: unknown }[] = [];
events.onAny((name, payload) => emitted.push({ name, payload }));
const ciphertexts: string[] = [];

async function unwrapperCrypto(privateKeyPem: string | undefined): Promise<ResolverCrypto> {
  const unwrapper = await createGrantUnwrapperFromPem({ clock }, { privateKeyPem });
  return { unwrapGrant: (value, binding) => unwrapper.unwrap(value, binding), decryptValue };
}

async function resolvers(sql: Sql = role.sql, privateKeyPem: string | undefined = pair.privateKeyPem): Promise<InputResolvers> {
  return createInputResolvers({
    sql,
    replayRecord: createTestReplayRecord(sql),
    crypto: await unwrapperCrypto(privateKeyPem),
    logger,
    events,
  });
}

async function enc(key: WebCryptoKey, value: unknown): Promise<string> {
  const wire = await encryptValue(key, value);
  ciphertexts.push(wire);
  return wire;
}

async function auditRows(): Promise<Record<string, unknown>[]> {
  return db.sql`SELECT user_id, mission_id, iteration_id, table_name, record_id, status, reason FROM mana_ai.decrypt_audit ORDER BY id`;
}

beforeAll(async () => {
  db = await createTestDatabase();
  [pair, otherPair] = await Promise.all([generateTestKeyPair(), generateTestKeyPair()]);
  role = await db.loginRole(ROLE, [...AUDIT_WRITER_PRIVILEGES, 'SELECT ON public.sync_changes']);

  const issuer = createGrantIssuer({ clock }, { publicKey: pair.publicKeyPem });
  grant = await issuer.issue(testMasterKey(), {
    missionId: MISSION,
    tables: ['notes', 'tasks', 'events', 'journalEntries', 'kontextDoc', 'userContext'],
    recordIds: [...granted.map((ref) => `${ref.table}:${ref.id}`), ...extraIds],
  });
  // v1 grants only decrypt data encrypted under the mission key (README: key-hierarchy limitation).
  const mdk = await deriveMissionDataKey(testMasterKey(), grant.derivation, ['encrypt']);
  const otherKey = await importAesKey(new Uint8Array(32).fill(3), ['encrypt']);
  const tampered = await enc(mdk, SECRETS.tampered);
  const dot = tampered.indexOf('.');
  const flipped = `${tampered.slice(0, dot + 1)}${tampered[dot + 1] === 'A' ? 'B' : 'A'}${tampered.slice(dot + 2)}`;
  const row = (appId: string, table: string, recordId: string, data: Record<string, unknown>, createdAt = NOW) => ({
    userId: USER,
    appId,
    table,
    recordId,
    op: 'insert' as const,
    data,
    createdAt,
  });
  await appendChanges(db.sql, [
    row('notes', 'notes', 'n1', { title: await enc(mdk, SECRETS.noteTitle), content: await enc(mdk, SECRETS.noteBody) }),
    {
      ...row('notes', 'notes', 'n1', { content: await enc(mdk, SECRETS.noteBodyLater) }, '2026-04-20T08:00:01.000Z'),
      op: 'update',
      fieldMeta: { content: '2026-04-20T08:00:01.000Z' },
    },
    row('todo', 'tasks', 't1', {
      title: await enc(mdk, SECRETS.task),
      description: await enc(mdk, SECRETS.taskDescription),
      status: 'open',
      dueDate: '2026-05-01',
    }),
    row('calendar', 'events', 'e1', {
      title: await enc(mdk, SECRETS.event),
      location: await enc(mdk, SECRETS.location),
      startDate: '2026-05-02T09:00:00.000Z',
    }),
    row('journal', 'journalEntries', 'j1', { title: 'Tag', content: await enc(mdk, SECRETS.journal) }),
    row('kontext', 'kontextDoc', 'k1', { content: await enc(mdk, SECRETS.kontext) }),
    row('profile', 'userContext', 'singleton', {
      about: await enc(mdk, SECRETS.about),
      leisure: await enc(mdk, SECRETS.leisure),
      interests: await enc(mdk, ['Musik']),
    }),
    row('notes', 'notes', 'n-wrong-key', { content: await enc(otherKey, SECRETS.wrongKey) }),
    row('notes', 'notes', 'n-tampered', { content: flipped }),
    row('notes', 'notes', 'n-malformed', { content: 'enc:1:no-separator-here' }),
    row('notes', 'notes', 'n-outside', { content: await enc(mdk, SECRETS.outside) }),
    row('notes', 'notes', 'n-deleted', { content: 'x' }),
    { ...row('notes', 'notes', 'n-deleted', { deletedAt: NOW }, '2026-04-20T08:00:02.000Z'), op: 'delete' },
  ]);
  ciphertexts.push(flipped, grant.wrappedKey);
});

afterAll(async () => {
  await role?.drop();
  await db.drop();
});

beforeEach(async () => {
  await db.sql`TRUNCATE mana_ai.decrypt_audit`;
  emitted.length = 0;
  clock.set(NOW);
});

describe('createInputResolvers (end to end with a real grant and Postgres)', () => {
  it('resolves every encrypted kind in input order when the issued grant is consumed', async () => {
    const subject = await resolvers();
    const results = await subject.resolve({ userId: USER, missionId: MISSION, iterationId: 'it-1', grant, inputs: granted });
    expect(results).toEqual([
      { id: 'n1', module: 'notes', table: 'notes', title: SECRETS.noteTitle, content: SECRETS.noteBodyLater },
      {
        id: 't1',
        module: 'todo',
        table: 'tasks',
        title: SECRETS.task,
        content: `[open] ${SECRETS.task} — ${SECRETS.taskDescription} (faellig: 2026-05-01)`,
      },
      {
        id: 'e1',
        module: 'calendar',
        table: 'events',
        title: SECRETS.event,
        content: `${SECRETS.event} @ 2026-05-02T09:00:00.000Z in ${SECRETS.location}`,
      },
      { id: 'j1', module: 'journal', table: 'journalEntries', title: 'Tag', content: SECRETS.journal },
      { id: 'k1', module: 'kontext', table: 'kontextDoc', title: 'Mana-Kontext', content: SECRETS.kontext },
      {
        id: 'singleton',
        module: 'profile',
        table: 'userContext',
        title: 'Nutzerprofil',
        content: `${SECRETS.about}\n["Musik"]\n${SECRETS.leisure}`,
      },
    ]);
    const rows = await auditRows();
    expect(rows).toHaveLength(6);
    for (const row of rows) {
      expect(row).toMatchObject({ user_id: USER, mission_id: MISSION, iteration_id: 'it-1', status: 'ok', reason: null });
    }
    expect(emitted.filter((event) => event.name === 'decrypt.succeeded').map((event) => event.payload)).toContainEqual({
      missionId: MISSION,
      table: 'userContext',
      fields: 3,
    });
  });

  it('resolves a core mission with its own grant and audits under the run’s iteration id when used as core’s inputs port', async () => {
    const port = createInputsPort(await resolvers());
    const mission: Mission = {
      id: MISSION,
      userId: USER,
      title: 't',
      objective: 'o',
      conceptMarkdown: '',
      state: 'active',
      inputs: granted.slice(0, 1),
      cadence: { kind: 'manual' },
      iterations: [],
      grant,
    };
    const results = await port.resolve({ mission, agent: null, iterationId: 'it-port' });
    expect(results).toEqual([{ id: 'n1', module: 'notes', table: 'notes', title: SECRETS.noteTitle, content: SECRETS.noteBodyLater }]);
    expect(await auditRows()).toEqual([expect.objectContaining({ mission_id: MISSION, iteration_id: 'it-port', status: 'ok' })]);
  });

  it('audits a scope violation and emits the event when the record is not on the allowlist', async () => {
    const subject = await resolvers();
    const inputs = [
      { module: 'notes', table: 'notes', id: 'n-outside' },
      { module: 'journal', table: 'journalArchive', id: 'j9' },
    ];
    expect(await subject.resolve({ userId: USER, missionId: MISSION, iterationId: 'it-2', grant, inputs })).toEqual([]);
    const rows = (await auditRows()).sort((a, b) => String(b.record_id).localeCompare(String(a.record_id)));
    expect(rows).toEqual([
      expect.objectContaining({ record_id: 'n-outside', status: 'scope-violation', reason: 'record-not-in-grant-allowlist' }),
      expect.objectContaining({ record_id: 'j9', status: 'scope-violation', reason: 'table-not-in-grant' }),
    ]);
    expect(emitted.filter((event) => event.name === 'grant.scope-violation').map((event) => event.payload)).toEqual([
      { missionId: MISSION, table: 'notes', reason: 'record-not-in-grant-allowlist' },
      { missionId: MISSION, table: 'journalArchive', reason: 'table-not-in-grant' },
    ]);
  });

  it.each([
    ['n-tampered', 'ciphertext-tampered-or-wrong-key'],
    ['n-wrong-key', 'ciphertext-tampered-or-wrong-key'],
    ['n-malformed', 'ciphertext-malformed'],
  ])('audits failed with the reason when record %s cannot be decrypted', async (id, reason) => {
    const subject = await resolvers();
    const inputs = [{ module: 'notes', table: 'notes', id }];
    expect(await subject.resolve({ userId: USER, missionId: MISSION, grant, inputs })).toEqual([]);
    expect(await auditRows()).toEqual([
      { user_id: USER, mission_id: MISSION, iteration_id: null, table_name: 'notes', record_id: id, status: 'failed', reason },
    ]);
  });

  it('yields nothing without an audit row when the record is absent from the log or deleted', async () => {
    const subject = await resolvers();
    const inputs = [
      { module: 'notes', table: 'notes', id: 'n-absent' },
      { module: 'notes', table: 'notes', id: 'n-deleted' },
    ];
    expect(await subject.resolve({ userId: USER, missionId: MISSION, grant, inputs })).toEqual([]);
    expect(await auditRows()).toEqual([]);
    expect(emitted.filter((event) => event.name === 'input.missing')).toHaveLength(2);
  });

  it('does not see another user’s records when resolving under RLS', async () => {
    const subject = await resolvers();
    const results = await subject.resolve({ userId: 'user-2', missionId: MISSION, grant, inputs: granted.slice(0, 1) });
    expect(results).toEqual([]);
    expect(emitted.filter((event) => event.name === 'input.missing')).toHaveLength(1);
  });

  it.each([
    ['expired', async () => ({ subject: await resolvers(), grant, missionId: MISSION, advance: 8 * 86_400_000 })],
    ['not-configured', async () => ({ subject: await resolvers(role.sql, ''), grant, missionId: MISSION, advance: 0 })],
    ['wrap-rejected', async () => ({ subject: await resolvers(role.sql, otherPair.privateKeyPem), grant, missionId: MISSION, advance: 0 })],
    ['malformed', async () => ({ subject: await resolvers(), grant: { ...grant, wrappedKey: '%%' }, missionId: MISSION, advance: 0 })],
    [
      'unsupported-version',
      async () => ({
        subject: await resolvers(),
        grant: { ...grant, derivation: { ...grant.derivation, version: 'v2' } as unknown as GrantDerivation },
        missionId: MISSION,
        advance: 0,
      }),
    ],
  ])('skips encrypted inputs with grant.skipped %s and writes no audit row', async (reason, setup) => {
    const { subject, grant: used, missionId, advance } = await setup();
    clock.advance(advance);
    expect(await subject.resolve({ userId: USER, missionId, grant: used, inputs: granted })).toEqual([]);
    expect(emitted.filter((event) => event.name === 'grant.skipped').map((event) => event.payload)).toEqual([
      { missionId, reason },
    ]);
    expect(await auditRows()).toEqual([]);
  });

  it('audits each encrypted input as scope-violation / mission-mismatch when the grant belongs to another mission', async () => {
    const subject = await resolvers();
    const inputs = [...granted.slice(0, 2), { module: 'goals', table: 'companionGoals', id: 'g1' }];
    expect(await subject.resolve({ userId: USER, missionId: 'mission-2', iterationId: 'it-3', grant, inputs })).toEqual([]);
    expect(emitted.filter((event) => event.name === 'grant.skipped').map((event) => event.payload)).toEqual([
      { missionId: 'mission-2', reason: 'mission-mismatch' },
    ]);
    const scope = { user_id: USER, mission_id: 'mission-2', iteration_id: 'it-3', status: 'scope-violation', reason: 'mission-mismatch' };
    expect((await auditRows()).sort((a, b) => String(a.record_id).localeCompare(String(b.record_id)))).toEqual([
      { ...scope, table_name: 'notes', record_id: 'n1' },
      { ...scope, table_name: 'tasks', record_id: 't1' },
    ]);
    // The two rows are written concurrently (inputs resolve four at a time): any order.
    const read = await subject.audit.read(USER, { missionId: 'mission-2' });
    expect(read.map((row) => [row.recordId, row.status, row.reason]).sort()).toEqual([
      ['n1', 'scope-violation', 'mission-mismatch'],
      ['t1', 'scope-violation', 'mission-mismatch'],
    ]);
  });

  it('withholds a decrypted input (fail closed) when its audit row cannot be written', async () => {
    const readonly = await db.loginRole(`${ROLE}_ro`, ['USAGE ON SCHEMA mana_ai', 'SELECT ON public.sync_changes']);
    try {
      const subject = await resolvers(readonly.sql);
      const results = await subject.resolve({ userId: USER, missionId: MISSION, grant, inputs: granted.slice(0, 2) });
      expect(results).toEqual([]);
      const payloads = (name: string) =>
        emitted
          .filter((event) => event.name === name)
          .map((event) => event.payload as { table: string })
          .sort((a, b) => a.table.localeCompare(b.table));
      expect(payloads('decrypt.audit-failed')).toEqual([
        { missionId: MISSION, table: 'notes', error: 'PostgresError' },
        { missionId: MISSION, table: 'tasks', error: 'PostgresError' },
      ]);
      expect(payloads('input.withheld')).toEqual([
        { missionId: MISSION, module: 'notes', table: 'notes', reason: 'audit-failed' },
        { missionId: MISSION, module: 'todo', table: 'tasks', reason: 'audit-failed' },
      ]);
      expect(await auditRows()).toEqual([]);
    } finally {
      await readonly.drop();
    }
  });

  it('never logs key material, ciphertext or decrypted content across all these runs', () => {
    const output = logger.lines.join('\n');
    expect(logger.lines.length).toBeGreaterThan(0);
    const pemBody = (pem: string) => pem.split('\n').filter((line) => line && !line.startsWith('-----'));
    const forbidden = [
      ...Object.values(SECRETS),
      ...ciphertexts,
      'enc:1:',
      ...pemBody(pair.privateKeyPem),
      ...pemBody(otherPair.privateKeyPem),
      '7538df66',
      Array.from(testMasterKey(), (byte) => byte.toString(16).padStart(2, '0')).join(''),
    ];
    for (const needle of forbidden) expect(output).not.toContain(needle);
    const eventsText = JSON.stringify(emitted);
    for (const needle of forbidden) expect(eventsText).not.toContain(needle);
  });
});

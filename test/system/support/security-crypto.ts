import { type Clock, type MissionGrant, createEventBus } from '@mana-ai/core';
import { createGrantIssuer, createGrantUnwrapperFromPem, decryptValue, deriveMissionDataKey, encryptValue } from '@mana-ai/crypto';
import { type TestKeyPair, generateTestKeyPair, testMasterKey } from '@mana-ai/crypto/testing';
import type { Projection } from '@mana-ai/projection';
import { type InputResolvers, type ResolverEvents, createInputResolvers } from '@mana-ai/resolvers';
import type { Sql } from 'postgres';
import { createLogger } from '../../../apps/runner/src/logger.js';
import { insertLogRows } from './security-database.js';
import { type Secret, pemFragments } from './security-scan.js';

/** User text that must never leave the resolvers except as the resolved input itself. */
export const SECRET_TEXT = {
  title: 'Arztbrief Oktober',
  content: 'Diagnose: vertraulicher Befund 7Q4Z',
  task: 'Kuendigung schreiben an Frau Kestner',
};

/** A grant, the key pair it was issued with, and the ciphertexts written to the log. */
export interface GrantFixture {
  keys: TestKeyPair;
  grant: MissionGrant;
  ciphertexts: string[];
}

/**
 * Issues a v1 grant for `missionId` over `notes:n1` and `notes:n2` with the test key pair and writes
 * `notes/n1` (title and content encrypted under the grant's mission key) and an encrypted task
 * `tasks/t1` (not granted) for `userId`.
 */
export async function seedGrantedNote(sql: Sql, clock: Clock, userId: string, missionId: string): Promise<GrantFixture> {
  const keys = await generateTestKeyPair();
  const issuer = createGrantIssuer({ clock }, { publicKey: keys.publicKeyPem });
  const grant = await issuer.issue(testMasterKey(), { missionId, tables: ['notes'], recordIds: ['notes:n1', 'notes:n2'], ttlMs: 3_600_000 });
  // v1 grants decrypt values encrypted under the mission key (crypto README, B2).
  const mdk = await deriveMissionDataKey(testMasterKey(), grant.derivation, ['encrypt']);
  const ciphertexts = [
    await encryptValue(mdk, SECRET_TEXT.title),
    await encryptValue(mdk, SECRET_TEXT.content),
    await encryptValue(mdk, SECRET_TEXT.task),
  ];
  await insertLogRows(sql, [
    { userId, recordId: 'n1', appId: 'notes', table: 'notes', dataJson: JSON.stringify({ title: ciphertexts[0], content: ciphertexts[1] }) },
    { userId, recordId: 't1', appId: 'todo', table: 'tasks', dataJson: JSON.stringify({ title: ciphertexts[2], status: 'open' }) },
  ]);
  return { keys, grant, ciphertexts: [...ciphertexts, grant.wrappedKey] };
}

/** Resolvers wired like the runner wires them, with every log line and event captured. */
export interface CapturedResolvers {
  resolvers: InputResolvers;
  logLines: string[];
  events: { name: string; payload: unknown }[];
  /** How often the crypto port was asked to decrypt a value. */
  decryptCalls: () => number;
}

/** Builds input resolvers over `projection.replayRecord` and the grant key, logging at trace level into memory. */
export async function captureResolvers(sql: Sql, projection: Projection, clock: Clock, privateKeyPem: string): Promise<CapturedResolvers> {
  const logLines: string[] = [];
  const captured: { name: string; payload: unknown }[] = [];
  const bus = createEventBus<ResolverEvents>();
  bus.onAny((name, payload) => captured.push({ name: String(name), payload }));
  const unwrapper = await createGrantUnwrapperFromPem({ clock }, { privateKeyPem });
  let decrypts = 0;
  const resolvers = createInputResolvers({
    sql,
    replayRecord: projection.replayRecord,
    crypto: {
      unwrapGrant: (grant, binding) => unwrapper.unwrap(grant, binding),
      decryptValue: (key, value) => {
        decrypts += 1;
        return decryptValue(key, value);
      },
    },
    logger: createLogger({ level: 'trace', destination: { write: (line: string) => void logLines.push(line) } }),
    events: bus,
  });
  return { resolvers, logLines, events: captured, decryptCalls: () => decrypts };
}

/** What must never show up once `fixture` is seeded: its plaintexts, ciphertexts and private key. */
export function fixtureSecrets(fixture: GrantFixture): Secret[] {
  return [
    ['note title', SECRET_TEXT.title],
    ['note content', SECRET_TEXT.content],
    ['task title', SECRET_TEXT.task],
    ...fixture.ciphertexts.map((text, index): Secret => [`ciphertext ${index}`, text]),
    ...pemFragments(fixture.keys.privateKeyPem).map((line, index): Secret => [`private key line ${index}`, line]),
  ];
}

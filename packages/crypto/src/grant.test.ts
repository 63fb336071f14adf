import { type MissionGrant, createManualClock } from '@mana-ai/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeBase64 } from './base64.js';
import { deriveMissionDataKey, deriveMissionDataKeyRaw } from './derivation.js';
import {
  MAX_GRANT_TTL_MS,
  MIN_GRANT_TTL_MS,
  clampGrantTtl,
  createGrantIssuer,
  validateGrantRequest,
} from './grant-issuer.js';
import { checkGrantScope, createGrantUnwrapper, createGrantUnwrapperFromPem } from './grant-unwrapper.js';
import { importRsaPrivateKey } from './pem.js';
import { platformKey } from './subtle.js';
import { LARGE_GRANT_KEY_HEX, type TestKeyPair, generateTestKeyPair, largeGrantRequest, testMasterKey } from './testing/index.js';
import { decryptValue, encryptValue } from './value.js';

const NOW = '2026-04-20T08:00:00.000Z';
const request = { missionId: 'mission-abc', tables: ['tasks', 'notes'], recordIds: ['tasks:t1', 'notes:n1'] };
const hex = (bytes: Uint8Array): string => Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');

let pair: TestKeyPair;
let otherPair: TestKeyPair;
beforeAll(async () => {
  [pair, otherPair] = await Promise.all([generateTestKeyPair(), generateTestKeyPair()]);
});

async function issue(overrides: Partial<typeof request & { ttlMs: number }> = {}): Promise<MissionGrant> {
  const issuer = createGrantIssuer({ clock: createManualClock(NOW) }, { publicKey: pair.publicKeyPem });
  return issuer.issue(testMasterKey(), { ...request, ...overrides });
}

describe('validateGrantRequest', () => {
  it.each([
    [{ tables: ['notes'], recordIds: ['notes:n1'] }, 'missionId is required'],
    [{ missionId: '', tables: ['notes'], recordIds: ['notes:n1'] }, 'missionId is required'],
    [{ missionId: 'm', tables: [], recordIds: ['notes:n1'] }, 'tables must be a non-empty array'],
    [{ missionId: 'm', tables: [1], recordIds: ['notes:n1'] }, 'tables must be a non-empty array'],
    [{ missionId: 'm', tables: ['notes'], recordIds: [] }, 'recordIds must be a non-empty array'],
    [{ missionId: 'm', tables: ['notes'], recordIds: ['n:1'], ttlMs: Number.NaN }, 'ttlMs must be a finite number'],
    [null, 'missionId is required'],
  ])('throws CRYPTO_INVALID_GRANT_REQUEST when the request is %j', (input, message) => {
    expect(() => validateGrantRequest(input)).toThrow(
      expect.objectContaining({ code: 'CRYPTO_INVALID_GRANT_REQUEST', message }),
    );
  });

  it('accepts exactly 1,000 record ids and refuses 1,001', () => {
    const ids = (count: number): string[] => Array.from({ length: count }, (_, index) => `notes:n${index}`);
    expect(validateGrantRequest({ missionId: 'm', tables: ['notes'], recordIds: ids(1000) }).recordIds).toHaveLength(1000);
    expect(() => validateGrantRequest({ missionId: 'm', tables: ['notes'], recordIds: ids(1001) })).toThrow(
      'recordIds must not exceed 1000 entries',
    );
  });
});

describe('clampGrantTtl', () => {
  it('defaults to 7 days and clamps to 1 hour … 30 days when given extremes', () => {
    expect(clampGrantTtl(undefined)).toBe(604_800_000);
    expect(clampGrantTtl(1)).toBe(MIN_GRANT_TTL_MS);
    expect(clampGrantTtl(365 * 86_400_000)).toBe(MAX_GRANT_TTL_MS);
    expect(clampGrantTtl(7_200_000)).toBe(7_200_000);
  });
});

describe('createGrantIssuer', () => {
  it('issues a sorted v1 derivation whose wrapped key RSA-decrypts to the HKDF key', async () => {
    const grant = await issue();
    expect(grant.derivation).toEqual({
      version: 'v1',
      missionId: 'mission-abc',
      tables: ['notes', 'tasks'],
      recordIds: ['notes:n1', 'tasks:t1'],
    });
    expect(grant.issuedAt).toBe(NOW);
    expect(grant.expiresAt).toBe('2026-04-27T08:00:00.000Z');
    const wrapped = decodeBase64(grant.wrappedKey);
    expect(wrapped).toHaveLength(256);
    const privateKey = await importRsaPrivateKey(pair.privateKeyPem);
    const raw = new Uint8Array(await crypto.subtle.decrypt({ name: 'RSA-OAEP' }, platformKey(privateKey), wrapped));
    expect(hex(raw)).toBe('7538df66c51d3ddb667c0135feb4ac7c2800ba372babc7e61e9423d6a9a65628');
  });

  it('issues and unwraps a grant naming 1,000 UUID record ids to the independently computed key', async () => {
    const large = largeGrantRequest();
    const issuer = createGrantIssuer({ clock: createManualClock(NOW) }, { publicKey: pair.publicKeyPem });
    const grant = await issuer.issue(testMasterKey(), large);
    expect(grant.derivation.recordIds).toHaveLength(1000);
    const privateKey = await importRsaPrivateKey(pair.privateKeyPem);
    const raw = new Uint8Array(await crypto.subtle.decrypt({ name: 'RSA-OAEP' }, platformKey(privateKey), decodeBase64(grant.wrappedKey)));
    expect(hex(raw)).toBe(LARGE_GRANT_KEY_HEX);
    const result = await createGrantUnwrapper({ clock: createManualClock(NOW) }, { privateKey }).unwrap(grant, {
      missionId: large.missionId,
      tables: ['notes'],
    });
    if (!result.ok) throw new Error(`unexpected ${result.reason}`);
    const encryptKey = await deriveMissionDataKey(testMasterKey(), grant.derivation, ['encrypt']);
    expect(await decryptValue(result.key, await encryptValue(encryptKey, 'geheim'))).toBe('geheim');
  });

  it('clamps a one-year TTL to exactly 30 days when issuing', async () => {
    const grant = await issue({ ttlMs: 365 * 86_400_000 });
    expect(Date.parse(grant.expiresAt) - Date.parse(grant.issuedAt)).toBe(MAX_GRANT_TTL_MS);
  });

  it('zero-fills the master key when issuing succeeds and when it fails', async () => {
    const issuer = createGrantIssuer({}, { publicKey: pair.publicKeyPem });
    const used = testMasterKey();
    await issuer.issue(used, request);
    expect(used.every((byte) => byte === 0)).toBe(true);
    const rejected = testMasterKey();
    await expect(issuer.issue(rejected, { ...request, tables: [] })).rejects.toMatchObject({
      code: 'CRYPTO_INVALID_GRANT_REQUEST',
    });
    expect(rejected.every((byte) => byte === 0)).toBe(true);
  });

  it('throws CRYPTO_GRANT_NOT_CONFIGURED before validating when no public key is set', async () => {
    const issuer = createGrantIssuer();
    expect(issuer.configured).toBe(false);
    await expect(issuer.issue(testMasterKey(), { ...request, missionId: '' })).rejects.toMatchObject({
      code: 'CRYPTO_GRANT_NOT_CONFIGURED',
    });
  });

  it('produces a fresh wrapped key for the same request when issuing twice', async () => {
    expect((await issue()).wrappedKey).not.toBe((await issue()).wrappedKey);
  });
});

describe('createGrantUnwrapper', () => {
  const clock = createManualClock(NOW);
  const unwrapperFor = async (pem: string) => createGrantUnwrapperFromPem({ clock }, { privateKeyPem: pem });

  it('returns a key that decrypts data encrypted under the independently derived key', async () => {
    const grant = await issue();
    const result = await (await unwrapperFor(pair.privateKeyPem)).unwrap(grant, { missionId: 'mission-abc' });
    if (!result.ok) throw new Error(`unexpected ${result.reason}`);
    expect(result.key.extractable).toBe(false);
    expect(result.derivation).toEqual(grant.derivation);
    const encryptKey = await deriveMissionDataKey(testMasterKey(), grant.derivation, ['encrypt']);
    expect(await decryptValue(result.key, await encryptValue(encryptKey, 'geheim'))).toBe('geheim');
  });

  it('returns not-configured when no key or an empty PEM is configured', async () => {
    const grant = await issue();
    expect(await createGrantUnwrapper().unwrap(grant, { missionId: 'mission-abc' })).toEqual({
      ok: false,
      reason: 'not-configured',
    });
    const empty = await createGrantUnwrapperFromPem({}, { privateKeyPem: '' });
    expect(empty.configured).toBe(false);
    expect(await empty.unwrap(grant, { missionId: 'mission-abc' })).toEqual({ ok: false, reason: 'not-configured' });
  });

  it('returns expired when expiresAt lies one millisecond in the past or does not parse', async () => {
    const grant = await issue();
    const unwrapper = await unwrapperFor(pair.privateKeyPem);
    const late = createManualClock(Date.parse(grant.expiresAt) + 1);
    const lateUnwrapper = createGrantUnwrapper({ clock: late }, { privateKey: await importRsaPrivateKey(pair.privateKeyPem) });
    expect(await lateUnwrapper.unwrap(grant, { missionId: 'mission-abc' })).toEqual({ ok: false, reason: 'expired' });
    expect(await unwrapper.unwrap({ ...grant, expiresAt: 'soon' }, { missionId: 'mission-abc' })).toEqual({
      ok: false,
      reason: 'expired',
    });
  });

  it('accepts the grant at the exact expiry instant', async () => {
    const grant = await issue();
    const atExpiry = createGrantUnwrapper(
      { clock: createManualClock(grant.expiresAt) },
      { privateKey: await importRsaPrivateKey(pair.privateKeyPem) },
    );
    expect((await atExpiry.unwrap(grant, { missionId: 'mission-abc' })).ok).toBe(true);
  });

  it.each([
    ['not an object', () => 'grant'],
    ['wrappedKey not base64', (grant: MissionGrant) => ({ ...grant, wrappedKey: '***' })],
    ['wrappedKey missing', (grant: MissionGrant) => ({ ...grant, wrappedKey: undefined })],
    ['derivation missing', (grant: MissionGrant) => ({ ...grant, derivation: null })],
    ['recordIds not strings', (grant: MissionGrant) => ({ ...grant, derivation: { ...grant.derivation, recordIds: [1] } })],
  ])('returns malformed when the grant has %s', async (_, mutate) => {
    const grant = mutate(await issue());
    expect(await (await unwrapperFor(pair.privateKeyPem)).unwrap(grant, { missionId: 'mission-abc' })).toEqual({
      ok: false,
      reason: 'malformed',
    });
  });

  it('returns malformed when the wrapped plaintext is not 32 bytes', async () => {
    const grant = await issue();
    const publicKey = await crypto.subtle.importKey(
      'spki',
      decodeBase64(pair.publicKeyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '')),
      { name: 'RSA-OAEP', hash: 'SHA-256' },
      false,
      ['encrypt'],
    );
    const short = new Uint8Array(await crypto.subtle.encrypt({ name: 'RSA-OAEP' }, publicKey, new Uint8Array(16)));
    const wrappedKey = btoa(String.fromCharCode(...short));
    expect(await (await unwrapperFor(pair.privateKeyPem)).unwrap({ ...grant, wrappedKey }, { missionId: 'mission-abc' })).toEqual({
      ok: false,
      reason: 'malformed',
    });
  });

  it('returns wrap-rejected when the grant was wrapped for another key or the ciphertext is corrupt', async () => {
    const grant = await issue();
    const other = await unwrapperFor(otherPair.privateKeyPem);
    expect(await other.unwrap(grant, { missionId: 'mission-abc' })).toEqual({ ok: false, reason: 'wrap-rejected' });
    const bytes = decodeBase64(grant.wrappedKey);
    bytes[10] = bytes[10]! ^ 0xff;
    const corrupt = { ...grant, wrappedKey: btoa(String.fromCharCode(...bytes)) };
    expect(await (await unwrapperFor(pair.privateKeyPem)).unwrap(corrupt, { missionId: 'mission-abc' })).toEqual({
      ok: false,
      reason: 'wrap-rejected',
    });
  });

  it('returns mission-mismatch when the grant was derived for another mission', async () => {
    const grant = await issue();
    expect(await (await unwrapperFor(pair.privateKeyPem)).unwrap(grant, { missionId: 'mission-xyz' })).toEqual({
      ok: false,
      reason: 'mission-mismatch',
    });
  });

  it('returns unsupported-version when the derivation version is not v1', async () => {
    const grant = await issue();
    const v2 = { ...grant, derivation: { ...grant.derivation, version: 'v2' } };
    expect(await (await unwrapperFor(pair.privateKeyPem)).unwrap(v2, { missionId: 'mission-abc' })).toEqual({
      ok: false,
      reason: 'unsupported-version',
    });
  });

  it('returns table-not-granted when a bound table is missing from the derivation', async () => {
    const grant = await issue();
    const unwrapper = await unwrapperFor(pair.privateKeyPem);
    expect(await unwrapper.unwrap(grant, { missionId: 'mission-abc', tables: ['notes', 'events'] })).toEqual({
      ok: false,
      reason: 'table-not-granted',
    });
    expect((await unwrapper.unwrap(grant, { missionId: 'mission-abc', tables: ['notes'] })).ok).toBe(true);
  });

  it('throws CRYPTO_PKCS1_NOT_SUPPORTED at creation when the PEM is PKCS#1', async () => {
    const pkcs1 = pair.privateKeyPem.replaceAll('PRIVATE KEY', 'RSA PRIVATE KEY');
    await expect(createGrantUnwrapperFromPem({}, { privateKeyPem: pkcs1 })).rejects.toMatchObject({
      code: 'CRYPTO_PKCS1_NOT_SUPPORTED',
    });
  });
});

describe('checkGrantScope', () => {
  it('tells granted records from missing tables and missing ids', async () => {
    const { derivation } = await issue();
    expect(checkGrantScope(derivation, 'notes', 'n1')).toBe('granted');
    expect(checkGrantScope(derivation, 'notes', 'n2')).toBe('record-not-granted');
    expect(checkGrantScope(derivation, 'events', 'e1')).toBe('table-not-granted');
  });
});

describe('deriveMissionDataKeyRaw with a grant', () => {
  it('gives the same key for the stored sorted derivation and the unsorted request', async () => {
    const grant = await issue();
    const fromRequest = await deriveMissionDataKeyRaw(testMasterKey(), { version: 'v1', ...request });
    expect(hex(await deriveMissionDataKeyRaw(testMasterKey(), grant.derivation))).toBe(hex(fromRequest));
  });
});

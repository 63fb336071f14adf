import type { GrantDerivation } from '@mana-ai/core';
import { describe, expect, it } from 'vitest';
import { canonicalInfoString, deriveMissionDataKey, deriveMissionDataKeyRaw, importAesKey } from './derivation.js';
import { CryptoError } from './errors.js';

const masterKey = (): Uint8Array => new Uint8Array(32).map((_, index) => index + 1);
const hex = (bytes: Uint8Array): string => Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
const derivation = (missionId: string, tables: string[], recordIds: string[]): GrantDerivation => ({
  version: 'v1',
  missionId,
  tables,
  recordIds,
});

describe('canonicalInfoString', () => {
  it('sorts tables and record ids when they arrive unsorted', () => {
    expect(canonicalInfoString(derivation('mission-abc', ['tasks', 'notes'], ['tasks:t1', 'notes:n1']))).toBe(
      'mana-ai-mission-grant:v1:tables=notes,tasks:ids=notes:n1,tasks:t1',
    );
  });

  it('does not reorder the caller arrays when sorting', () => {
    const input = derivation('m', ['b', 'a'], ['b:1', 'a:1']);
    canonicalInfoString(input);
    expect(input.tables).toEqual(['b', 'a']);
    expect(input.recordIds).toEqual(['b:1', 'a:1']);
  });
});

describe('deriveMissionDataKeyRaw', () => {
  it.each([
    ['mission-abc', ['notes', 'tasks'], ['notes:n1', 'tasks:t1'], '7538df66c51d3ddb667c0135feb4ac7c2800ba372babc7e61e9423d6a9a65628'],
    ['mission-abc', ['tasks', 'notes'], ['tasks:t1', 'notes:n1'], '7538df66c51d3ddb667c0135feb4ac7c2800ba372babc7e61e9423d6a9a65628'],
    ['mission-abc', ['notes'], ['notes:n1'], 'c0994b8ed0b009baf050ecc3e3b627cbcb14e126385f922f685081e2c17feb69'],
    ['m1', ['notes', 'tasks'], ['notes:n1', 'notes:n2', 'tasks:t9'], 'a668d5506fd3d45d19fe77a490120172bf606ce95569d95196f979d464a16490'],
  ])('matches the golden vector when mission is %s with tables %j', async (missionId, tables, recordIds, expected) => {
    expect(hex(await deriveMissionDataKeyRaw(masterKey(), derivation(missionId, tables, recordIds)))).toBe(expected);
  });

  it('produces different keys when the mission or the scope differs', async () => {
    const base = hex(await deriveMissionDataKeyRaw(masterKey(), derivation('m', ['notes'], ['notes:n1'])));
    const otherMission = hex(await deriveMissionDataKeyRaw(masterKey(), derivation('m2', ['notes'], ['notes:n1'])));
    const otherTables = hex(await deriveMissionDataKeyRaw(masterKey(), derivation('m', ['notes', 'tasks'], ['notes:n1'])));
    const otherIds = hex(await deriveMissionDataKeyRaw(masterKey(), derivation('m', ['notes'], ['notes:n2'])));
    expect(new Set([base, otherMission, otherTables, otherIds]).size).toBe(4);
  });

  it('rejects with CRYPTO_UNSUPPORTED_VERSION when the version is not v1', async () => {
    const bad = { ...derivation('m', ['notes'], ['notes:n1']), version: 'v0' } as unknown as GrantDerivation;
    await expect(deriveMissionDataKeyRaw(masterKey(), bad)).rejects.toMatchObject({
      code: 'CRYPTO_UNSUPPORTED_VERSION',
      message: expect.stringMatching(/unsupported derivation version v0/),
    });
  });

  it('rejects with CRYPTO_INVALID_MASTER_KEY when the master key has 16 bytes', async () => {
    const error = await deriveMissionDataKeyRaw(new Uint8Array(16), derivation('m', ['n'], ['n:1'])).catch((e) => e);
    expect(error).toBeInstanceOf(CryptoError);
    expect(error.code).toBe('CRYPTO_INVALID_MASTER_KEY');
    expect(error.message).toMatch(/expected 32-byte master key, got 16/);
  });
});

describe('importAesKey', () => {
  it('zeroes the raw bytes and returns a non-extractable key when importing', async () => {
    const raw = new Uint8Array(32).fill(7);
    const key = await importAesKey(raw);
    expect(raw.every((byte) => byte === 0)).toBe(true);
    expect(key.extractable).toBe(false);
    expect(key.usages).toEqual(['decrypt']);
  });

  it('zeroes the raw bytes when the length is wrong', async () => {
    const raw = new Uint8Array(16).fill(7);
    await expect(importAesKey(raw)).rejects.toMatchObject({ code: 'CRYPTO_INVALID_ARGUMENT' });
    expect(raw.every((byte) => byte === 0)).toBe(true);
  });
});

describe('deriveMissionDataKey', () => {
  it('returns a non-extractable AES-GCM decrypt key when deriving', async () => {
    const key = await deriveMissionDataKey(masterKey(), derivation('m', ['notes'], ['notes:n1']));
    expect(key.algorithm).toMatchObject({ name: 'AES-GCM', length: 256 });
    expect(key.extractable).toBe(false);
  });
});

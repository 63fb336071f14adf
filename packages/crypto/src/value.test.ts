import type { WebCryptoKey } from '@mana-ai/core';
import { describe, expect, it } from 'vitest';
import { importAesKey } from './derivation.js';
import type { CryptoError } from './errors.js';
import { platformKey } from './subtle.js';
import { decryptRecordFields, decryptValue, encryptValue, isEncrypted } from './value.js';

const GOLDEN_MDK = '7538df66c51d3ddb667c0135feb4ac7c2800ba372babc7e61e9423d6a9a65628';
const fromHex = (hex: string): Uint8Array => new Uint8Array(hex.match(/../g)!.map((pair) => Number.parseInt(pair, 16)));
const goldenKey = (): Promise<WebCryptoKey> => importAesKey(fromHex(GOLDEN_MDK), ['encrypt', 'decrypt']);
const otherKey = (): Promise<WebCryptoKey> => importAesKey(new Uint8Array(32).fill(9), ['encrypt', 'decrypt']);
const fixedIv = (target: Uint8Array): Uint8Array => target.map((_, index) => index);

const VECTORS: [unknown, string][] = [
  ['hello mission', 'enc:1:AAECAwQFBgcICQoL.lU/8WrtW0r8//aWe7hGssJyju37ROodMVL2VHMY65w=='],
  [{ title: 'x', tags: ['y'] }, 'enc:1:AAECAwQFBgcICQoL.zAXtX6NVl/BsrK7VrV36YHfCh/qLLMgckLOgXUFplTqlNR7vGSfsGcDY'],
  [42, 'enc:1:AAECAwQFBgcICQoL.gxVncIV761lyh4YqboHxeIdK'],
];

describe('encryptValue', () => {
  it.each(VECTORS)('produces the spec wire string when encrypting %j with the fixed IV', async (value, wire) => {
    expect(await encryptValue(await goldenKey(), value, { random: fixedIv })).toBe(wire);
  });

  it('passes null and undefined through when encrypting', async () => {
    const key = await goldenKey();
    expect(await encryptValue(key, null)).toBeNull();
    expect(await encryptValue(key, undefined)).toBeUndefined();
  });

  it('uses a fresh IV when encrypting the same value twice', async () => {
    const key = await goldenKey();
    expect(await encryptValue(key, 'same')).not.toBe(await encryptValue(key, 'same'));
  });
});

describe('decryptValue', () => {
  it.each(VECTORS)('returns %j when decrypting the spec wire string', async (value, wire) => {
    expect(await decryptValue(await goldenKey(), wire)).toEqual(value);
  });

  it('round-trips arrays and objects when encrypting then decrypting', async () => {
    const key = await goldenKey();
    for (const value of [['a', 1, true], { nested: { list: [1, 2] } }, 'ümlaut ✓', false]) {
      expect(await decryptValue(key, await encryptValue(key, value))).toEqual(value);
    }
  });

  it('passes non-encrypted values through when decrypting', async () => {
    const key = await goldenKey();
    for (const value of [null, undefined, 42, 'plain', { a: 1 }]) expect(await decryptValue(key, value)).toBe(value);
  });

  it('rejects with CRYPTO_DECRYPT_FAILED when the ciphertext is tampered', async () => {
    const wire = VECTORS[0]![1];
    const dot = wire.indexOf('.');
    const tampered = `${wire.slice(0, dot + 1)}${wire[dot + 1] === 'A' ? 'B' : 'A'}${wire.slice(dot + 2)}`;
    await expect(decryptValue(await goldenKey(), tampered)).rejects.toMatchObject({ code: 'CRYPTO_DECRYPT_FAILED' });
  });

  it('rejects with CRYPTO_DECRYPT_FAILED when the key is wrong', async () => {
    await expect(decryptValue(await otherKey(), VECTORS[0]![1])).rejects.toMatchObject({
      code: 'CRYPTO_DECRYPT_FAILED',
    });
  });

  it.each([
    ['enc:1:nodot', /missing iv\/ct separator/],
    ['enc:1:AAECAwQFBgcI.lU/8WrtW0r8//aWe7hGssJyju37ROodMVL2VHMY65w==', /expected 12-byte IV, got 9/],
    ['enc:1:AAECAwQFBgcICQoL.%%%', /invalid base64/],
    ['enc:1:AAECAwQFBgcICQoL.AAAA', /shorter than the authentication tag/],
  ])('rejects with CRYPTO_MALFORMED_VALUE when the blob is %s', async (blob, message) => {
    const error = (await decryptValue(await goldenKey(), blob).catch((caught) => caught)) as CryptoError;
    expect(error.code).toBe('CRYPTO_MALFORMED_VALUE');
    expect(error.message).toMatch(/malformed/);
    expect(error.message).toMatch(message);
  });

  it('rejects with CRYPTO_MALFORMED_VALUE without quoting the plaintext when the payload is not JSON', async () => {
    const key = await goldenKey();
    const iv = new Uint8Array(12);
    const raw = await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, platformKey(key), new TextEncoder().encode('secret{'));
    const wire = `enc:1:${btoa(String.fromCharCode(...iv))}.${btoa(String.fromCharCode(...new Uint8Array(raw)))}`;
    const error = (await decryptValue(key, wire).catch((caught) => caught)) as CryptoError;
    expect(error.code).toBe('CRYPTO_MALFORMED_VALUE');
    expect(error.message).not.toContain('secret');
    expect(error.cause).toBeUndefined();
  });
});

describe('isEncrypted', () => {
  it('recognises only enc:1: strings when checking values', () => {
    expect(isEncrypted('enc:1:abc.def')).toBe(true);
    for (const value of ['plain', null, undefined, 42, 'enc:2:x']) expect(isEncrypted(value)).toBe(false);
  });
});

describe('decryptRecordFields', () => {
  it('decrypts only the enc:1: fields into a copy when the record mixes plain and encrypted fields', async () => {
    const key = await goldenKey();
    const record = {
      id: 'n1',
      title: await encryptValue(key, 'Private Titel'),
      content: await encryptValue(key, { body: 'geheimer inhalt' }),
      createdAt: '2026-04-20T08:00:00.000Z',
    };
    const result = await decryptRecordFields(record, key);
    expect(result.decryptedFields).toEqual(['content', 'title']);
    expect(result.record).toEqual({
      id: 'n1',
      title: 'Private Titel',
      content: { body: 'geheimer inhalt' },
      createdAt: '2026-04-20T08:00:00.000Z',
    });
    expect(isEncrypted(record.title)).toBe(true);
  });

  it('reports no fields when nothing is encrypted', async () => {
    const result = await decryptRecordFields({ id: 'x', title: 'plain' }, await goldenKey());
    expect(result).toEqual({ record: { id: 'x', title: 'plain' }, decryptedFields: [] });
  });
});

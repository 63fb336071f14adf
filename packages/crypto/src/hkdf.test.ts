import { describe, expect, it } from 'vitest';
import { hkdfSha256 } from './hkdf.js';

const hex = (bytes: Uint8Array): string => Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
const range = (from: number, to: number): Uint8Array => Uint8Array.from({ length: to - from + 1 }, (_, index) => from + index);

/** Native WebCrypto HKDF: the reference for inputs it accepts. */
async function nativeHkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Promise<string> {
  const key = await crypto.subtle.importKey('raw', new Uint8Array(ikm), 'HKDF', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits(
    { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(salt), info: new Uint8Array(info) },
    key,
    length * 8,
  );
  return hex(new Uint8Array(bits));
}

describe('hkdfSha256', () => {
  // RFC 5869 Appendix A, test cases 1–3 (SHA-256).
  it.each([
    [
      'case 1 (basic)',
      new Uint8Array(22).fill(0x0b),
      range(0x00, 0x0c),
      range(0xf0, 0xf9),
      42,
      '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
    ],
    [
      'case 2 (longer inputs and outputs)',
      range(0x00, 0x4f),
      range(0x60, 0xaf),
      range(0xb0, 0xff),
      82,
      'b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87',
    ],
    [
      'case 3 (zero-length salt and info)',
      new Uint8Array(22).fill(0x0b),
      new Uint8Array(0),
      new Uint8Array(0),
      42,
      '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
    ],
  ])('matches RFC 5869 %s', async (_, ikm, salt, info, length, okm) => {
    expect(hex(await hkdfSha256(ikm, salt, info, length))).toBe(okm);
  });

  it('equals the native WebCrypto HKDF when the info fits its 1,024-byte limit', async () => {
    const ikm = range(1, 32);
    for (const [infoLength, length] of [
      [0, 32],
      [1, 1],
      [31, 33],
      [500, 64],
      [1024, 100],
    ] as const) {
      const info = Uint8Array.from({ length: infoLength }, (_, index) => (index * 7) % 256);
      const salt = new TextEncoder().encode('mission-abc');
      expect({ infoLength, okm: hex(await hkdfSha256(ikm, salt, info, length)) }).toEqual({
        infoLength,
        okm: await nativeHkdf(ikm, salt, info, length),
      });
    }
  });

  it.each([0, -1, 8161, 1.5])('throws CRYPTO_INVALID_ARGUMENT when the length is %s', async (length) => {
    await expect(hkdfSha256(range(1, 32), new Uint8Array(0), new Uint8Array(0), length)).rejects.toMatchObject({
      code: 'CRYPTO_INVALID_ARGUMENT',
    });
  });
});

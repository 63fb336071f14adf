import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { sha1 } from './sha1.js';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const text = (value: string) => new TextEncoder().encode(value);

describe('sha1', () => {
  it('matches the FIPS 180 examples', () => {
    expect(hex(sha1(text('abc')))).toBe('a9993e364706816aba3e25717850c26c9cd0d89d');
    expect(hex(sha1(text('')))).toBe('da39a3ee5e6b4b0d3255bfef95601890afd80709');
    expect(hex(sha1(text('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq')))).toBe('84983e441c3bd26ebaae4aa1f95129e5e54670f1');
  });

  it('matches node:crypto for every length across the padding boundaries and for long input', () => {
    for (let length = 0; length <= 200; length++) {
      const input = randomBytes(length);
      expect(hex(sha1(input))).toBe(createHash('sha1').update(input).digest('hex'));
    }
    const long = randomBytes(100_000);
    expect(hex(sha1(long))).toBe(createHash('sha1').update(long).digest('hex'));
  });
});

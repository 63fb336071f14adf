import { beforeAll, describe, expect, it } from 'vitest';
import { decodeBase64 } from './base64.js';
import { CryptoError } from './errors.js';
import { importRsaPrivateKey, importRsaPublicKey, pemToDer } from './pem.js';
import { type TestKeyPair, derToPem, generateTestKeyPair } from './testing/index.js';

/** Reads one DER TLV at `offset`: returns where its content starts and ends. */
function readTlv(der: Uint8Array, offset: number): { start: number; end: number } {
  const first = der[offset + 1]!;
  if (first < 0x80) return { start: offset + 2, end: offset + 2 + first };
  const count = first & 0x7f;
  let length = 0;
  for (let index = 0; index < count; index++) length = length * 256 + der[offset + 2 + index]!;
  return { start: offset + 2 + count, end: offset + 2 + count + length };
}

/** The PKCS#1 RSAPrivateKey inside a PKCS#8 PrivateKeyInfo (version, algorithm, OCTET STRING key). */
function pkcs1FromPkcs8(pkcs8Pem: string): string {
  const der = decodeBase64(pkcs8Pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''));
  const outer = readTlv(der, 0);
  const version = readTlv(der, outer.start);
  const algorithm = readTlv(der, version.end);
  const key = readTlv(der, algorithm.end);
  return derToPem(der.slice(key.start, key.end), 'RSA PRIVATE KEY');
}

let pair: TestKeyPair;
beforeAll(async () => {
  pair = await generateTestKeyPair();
});

describe('pemToDer', () => {
  it('decodes the body when the label matches', () => {
    expect(pemToDer(pair.publicKeyPem, 'PUBLIC KEY')[0]).toBe(0x30);
  });

  it('throws CRYPTO_INVALID_PEM when the label is the wrong one', () => {
    expect(() => pemToDer(pair.publicKeyPem, 'PRIVATE KEY')).toThrow(
      expect.objectContaining({ code: 'CRYPTO_INVALID_PEM' }),
    );
  });

  it('throws CRYPTO_INVALID_PEM when the body is not base64', () => {
    expect(() => pemToDer('-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----', 'PUBLIC KEY')).toThrow(
      expect.objectContaining({ code: 'CRYPTO_INVALID_PEM' }),
    );
  });

  it('throws CRYPTO_INVALID_PEM when the input is empty', () => {
    expect(() => pemToDer('  ', 'PRIVATE KEY')).toThrow(expect.objectContaining({ code: 'CRYPTO_INVALID_PEM' }));
  });
});

describe('importRsaPrivateKey', () => {
  it('imports a non-extractable RSA-OAEP-SHA-256 decrypt key when given PKCS#8', async () => {
    const key = await importRsaPrivateKey(pair.privateKeyPem);
    expect(key.extractable).toBe(false);
    expect(key.usages).toEqual(['decrypt']);
    expect(key.algorithm).toMatchObject({ name: 'RSA-OAEP', hash: { name: 'SHA-256' } });
  });

  it('throws a typed CRYPTO_PKCS1_NOT_SUPPORTED error with a conversion hint when given PKCS#1', async () => {
    const error = await importRsaPrivateKey(pkcs1FromPkcs8(pair.privateKeyPem)).catch((caught) => caught);
    expect(error).toBeInstanceOf(CryptoError);
    expect(error.code).toBe('CRYPTO_PKCS1_NOT_SUPPORTED');
    expect(error.message).toMatch(/openssl pkcs8 -topk8/);
  });

  it('throws CRYPTO_KEY_IMPORT_FAILED when the DER is not a key', async () => {
    const pem = derToPem(new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x00]), 'PRIVATE KEY');
    await expect(importRsaPrivateKey(pem)).rejects.toMatchObject({ code: 'CRYPTO_KEY_IMPORT_FAILED' });
  });
});

describe('importRsaPublicKey', () => {
  it('imports an encrypt key when given SPKI', async () => {
    const key = await importRsaPublicKey(pair.publicKeyPem);
    expect(key.type).toBe('public');
    expect(key.usages).toEqual(['encrypt']);
  });

  it('throws CRYPTO_PKCS1_NOT_SUPPORTED when given an RSA PUBLIC KEY block', async () => {
    const pem = pair.publicKeyPem.replaceAll('PUBLIC KEY', 'RSA PUBLIC KEY');
    await expect(importRsaPublicKey(pem)).rejects.toMatchObject({ code: 'CRYPTO_PKCS1_NOT_SUPPORTED' });
  });
});

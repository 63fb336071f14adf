import { createManualClock } from '@mana-ai/core';
import { manaCore } from '@mana-ai/core/fastify';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { createGrantIssuer } from '../grant-issuer.js';
import { generateTestKeyPair, testMasterKey } from '../testing/index.js';
import { manaCrypto } from './index.js';

describe('manaCrypto plugin', () => {
  it('decorates an unwrapper that unwraps grants and logs no key material when given a private key PEM', async () => {
    const pair = await generateTestKeyPair();
    const clock = createManualClock('2026-04-20T08:00:00.000Z');
    const lines: string[] = [];
    const app = Fastify({ logger: { level: 'trace', stream: { write: (line: string) => lines.push(line) } } });
    await app.register(manaCore, { clock });
    await app.register(manaCrypto, { privateKeyPem: pair.privateKeyPem });
    await app.ready();
    const grant = await createGrantIssuer({ clock }, { publicKey: pair.publicKeyPem }).issue(testMasterKey(), {
      missionId: 'm1',
      tables: ['notes'],
      recordIds: ['notes:n1'],
    });
    expect(app.manaCrypto.grants.configured).toBe(true);
    expect((await app.manaCrypto.grants.unwrap(grant, { missionId: 'm1' })).ok).toBe(true);
    clock.advance(8 * 86_400_000);
    expect(await app.manaCrypto.grants.unwrap(grant, { missionId: 'm1' })).toEqual({ ok: false, reason: 'expired' });
    await app.close();
    expect(lines.length).toBeGreaterThan(0);
    const output = lines.join('');
    for (const line of pair.privateKeyPem.split('\n').filter((text) => text && !text.startsWith('-----'))) {
      expect(output).not.toContain(line);
    }
    expect(output).not.toContain(grant.wrappedKey);
  });

  it('decorates a not-configured unwrapper when no PEM is given', async () => {
    const app = Fastify();
    await app.register(manaCore);
    await app.register(manaCrypto, {});
    await app.ready();
    expect(await app.manaCrypto.grants.unwrap({}, { missionId: 'm1' })).toEqual({ ok: false, reason: 'not-configured' });
    await app.close();
  });

  it('fails the boot with CRYPTO_PKCS1_NOT_SUPPORTED when the PEM is PKCS#1', async () => {
    const pair = await generateTestKeyPair();
    const app = Fastify();
    await app.register(manaCore);
    const boot = async (): Promise<void> => {
      await app.register(manaCrypto, { privateKeyPem: pair.privateKeyPem.replaceAll('PRIVATE KEY', 'RSA PRIVATE KEY') });
      await app.ready();
    };
    await expect(boot()).rejects.toMatchObject({ code: 'CRYPTO_PKCS1_NOT_SUPPORTED' });
  });
});

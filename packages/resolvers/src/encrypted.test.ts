import type { WebCryptoKey } from '@mana-ai/core';
import { describe, expect, it } from 'vitest';
import type { DecryptAudit } from './audit.js';
import { checkScope, classifyDecryptError, createEncryptedResolver } from './encrypted.js';
import { NOTES_INPUT } from './format.js';

describe('classifyDecryptError', () => {
  it('maps crypto codes and upstream messages to audit reasons', () => {
    expect(classifyDecryptError({ code: 'CRYPTO_MALFORMED_VALUE' })).toBe('ciphertext-malformed');
    expect(classifyDecryptError({ code: 'CRYPTO_DECRYPT_FAILED' })).toBe('ciphertext-tampered-or-wrong-key');
    expect(classifyDecryptError(new Error('malformed encrypted blob'))).toBe('ciphertext-malformed');
    const operation = new Error('The operation failed');
    operation.name = 'OperationError';
    expect(classifyDecryptError(operation)).toBe('ciphertext-tampered-or-wrong-key');
    expect(classifyDecryptError(new Error('boom'))).toBe('decrypt-failed');
  });
});

describe('checkScope', () => {
  const grant = {
    key: {} as WebCryptoKey,
    derivation: { version: 'v1' as const, missionId: 'm', tables: ['notes'], recordIds: ['notes:n1'] },
  };
  it('tells a missing table from a missing record id', () => {
    expect(checkScope(grant, 'notes', 'n1')).toBeNull();
    expect(checkScope(grant, 'notes', 'n2')).toBe('record-not-in-grant-allowlist');
    expect(checkScope(grant, 'tasks', 'n1')).toBe('table-not-in-grant');
  });
});

describe('createEncryptedResolver', () => {
  it('returns null without replaying or auditing when the context has no grant', async () => {
    const calls: string[] = [];
    const audit: DecryptAudit = {
      write: async () => {
        calls.push('audit');
        return true;
      },
      read: async () => [],
    };
    const resolver = createEncryptedResolver(
      {
        replayRecord: async () => {
          calls.push('replay');
          return {};
        },
        crypto: {
          unwrapGrant: async () => ({ ok: false, reason: 'not-configured' }),
          decryptValue: async () => {
            calls.push('decrypt');
            return '';
          },
        },
        audit,
      },
      NOTES_INPUT,
    );
    expect(await resolver({ module: 'notes', table: 'notes', id: 'n1' }, { userId: 'u1', missionId: 'm1' })).toBeNull();
    expect(calls).toEqual([]);
  });
});

import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
// Loads the `manaCore` decorator type.
import type {} from '@mana-ai/core/fastify';
import { type GrantUnwrapper, createGrantUnwrapperFromPem } from '../grant-unwrapper.js';
import { decryptRecordFields, decryptValue } from '../value.js';

/** What the crypto plugin decorates the instance with as `manaCrypto`. */
export interface ManaCryptoDecorator {
  /** Unwraps mission grants with the configured private key (`not-configured` without one). */
  grants: GrantUnwrapper;
  /** {@link decryptValue}: decrypts one `enc:1:` value. */
  decryptValue: typeof decryptValue;
  /** {@link decryptRecordFields}: decrypts every `enc:1:` field of a record copy. */
  decryptRecordFields: typeof decryptRecordFields;
}

/** Options of the crypto plugin. */
export interface ManaCryptoPluginOptions {
  /** PKCS#8 PEM of the runner's RSA key (`MANA_AI_PRIVATE_KEY_PEM`); unset or empty = grants disabled. */
  privateKeyPem?: string | undefined;
}

declare module 'fastify' {
  interface FastifyInstance {
    manaCrypto: ManaCryptoDecorator;
  }
}

async function manaCryptoPlugin(fastify: FastifyInstance, options: ManaCryptoPluginOptions): Promise<void> {
  const grants = await createGrantUnwrapperFromPem(
    { clock: fastify.manaCore.clock },
    { privateKeyPem: options.privateKeyPem },
  );
  if (grants.configured) fastify.log.info({ grants: 'configured' }, 'mission grants enabled');
  else fastify.log.info({ grants: 'not-configured' }, 'mission grants disabled: no private key');
  fastify.decorate('manaCrypto', { grants, decryptValue, decryptRecordFields });
}

/**
 * Fastify plugin that decorates `manaCrypto` (grant unwrapper and value decryption). Needs the
 * `@mana-ai/core` plugin for the clock. An unusable PEM fails the boot with a `CryptoError`.
 */
export const manaCrypto = fp(manaCryptoPlugin, {
  name: '@mana-ai/crypto',
  fastify: '5.x',
  dependencies: ['@mana-ai/core'],
  decorators: { fastify: ['manaCore'] },
});
export default manaCrypto;

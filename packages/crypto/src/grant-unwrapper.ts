import { type Clock, type GrantDerivation, type WebCryptoKey, systemClock } from '@mana-ai/core';
import { decodeBase64 } from './base64.js';
import { GRANT_DERIVATION_VERSION, KEY_LENGTH_BYTES, importAesKey } from './derivation.js';
import { importRsaPrivateKey } from './pem.js';
import { platformKey, subtle } from './subtle.js';

/** Why an unwrap failed, with the upstream metric labels (`mana_ai_grant_skips_total{reason}`). */
export type GrantUnwrapFailureReason = 'not-configured' | 'expired' | 'malformed' | 'wrap-rejected';

/** Why a grant is not bound to the mission or inputs it is used for (our additions, B24, docs/wire-contract.md#the-originals-known-defects). */
export type GrantBindingFailureReason = 'mission-mismatch' | 'unsupported-version' | 'table-not-granted';

/** Every reason an unwrap can return. */
export type GrantUnwrapReason = GrantUnwrapFailureReason | GrantBindingFailureReason;

/** The outcome of {@link GrantUnwrapper.unwrap}: never thrown, always returned. */
export type GrantUnwrapResult =
  | { ok: true; key: WebCryptoKey; derivation: GrantDerivation }
  | { ok: false; reason: GrantUnwrapReason };

/** What the grant must be bound to. */
export interface GrantBinding {
  /** The mission the grant is used for: must equal `derivation.missionId`. */
  missionId: string;
  /** Tables that must all be in `derivation.tables` (optional; resolvers check per input too). */
  tables?: readonly string[];
}

/** Collaborators of {@link createGrantUnwrapper}. */
export interface GrantUnwrapperDeps {
  /** Source of "now" for the expiry check (default: the system clock). */
  clock?: Clock;
}

/** Options of {@link createGrantUnwrapper}. */
export interface GrantUnwrapperOptions {
  /** The runner's RSA-OAEP-SHA-256 private key; absent = every unwrap is `not-configured`. */
  privateKey?: WebCryptoKey | null;
}

/** Options of {@link createGrantUnwrapperFromPem}. */
export interface GrantUnwrapperPemOptions {
  /** PKCS#8 PEM (`BEGIN PRIVATE KEY`); undefined or empty = not configured. */
  privateKeyPem?: string | undefined;
}

/** Unwraps mission grants with the runner's private key. */
export interface GrantUnwrapper {
  /** True when a private key is configured. */
  readonly configured: boolean;
  /**
   * Checks and unwraps `grant`, in this order: `not-configured`, `malformed` (not a grant object),
   * `expired` (unparsable or past `expiresAt`), `malformed` (derivation or base64),
   * `unsupported-version`, `mission-mismatch`, `table-not-granted`, `wrap-rejected` (RSA failure),
   * `malformed` (unwrapped key is not 32 bytes). On success the key is a non-extractable AES-GCM
   * decrypt key and the raw bytes are zeroed. Never throws.
   */
  unwrap(grant: unknown, binding: GrantBinding): Promise<GrantUnwrapResult>;
}

/** The result of a scope check of one record against a grant's derivation. */
export type GrantScope = 'granted' | 'table-not-granted' | 'record-not-granted';

/** Whether `table:recordId` is covered by the derivation (table in `tables`, `"<table>:<id>"` in `recordIds`). */
export function checkGrantScope(derivation: GrantDerivation, table: string, recordId: string): GrantScope {
  if (!derivation.tables.includes(table)) return 'table-not-granted';
  return derivation.recordIds.includes(`${table}:${recordId}`) ? 'granted' : 'record-not-granted';
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((entry) => typeof entry === 'string');
}

function readDerivation(value: unknown): GrantDerivation | null {
  if (typeof value !== 'object' || value === null) return null;
  const candidate = value as Record<string, unknown>;
  if (typeof candidate.version !== 'string' || typeof candidate.missionId !== 'string') return null;
  if (!isStringArray(candidate.tables) || !isStringArray(candidate.recordIds)) return null;
  return {
    version: candidate.version as GrantDerivation['version'],
    missionId: candidate.missionId,
    tables: [...candidate.tables],
    recordIds: [...candidate.recordIds],
  };
}

const fail = (reason: GrantUnwrapReason): GrantUnwrapResult => ({ ok: false, reason });

/** Creates a grant unwrapper around an already imported private key. */
export function createGrantUnwrapper(deps: GrantUnwrapperDeps = {}, options: GrantUnwrapperOptions = {}): GrantUnwrapper {
  const clock = deps.clock ?? systemClock;
  const privateKey = options.privateKey ?? null;
  return {
    configured: privateKey !== null,
    async unwrap(grant, binding) {
      if (privateKey === null) return fail('not-configured');
      if (typeof grant !== 'object' || grant === null) return fail('malformed');
      const value = grant as Record<string, unknown>;
      const expiresAt = typeof value.expiresAt === 'string' ? Date.parse(value.expiresAt) : Number.NaN;
      if (Number.isNaN(expiresAt) || expiresAt < clock.now()) return fail('expired');
      const derivation = readDerivation(value.derivation);
      if (derivation === null || typeof value.wrappedKey !== 'string') return fail('malformed');
      let wrapped: Uint8Array<ArrayBuffer>;
      try {
        wrapped = decodeBase64(value.wrappedKey);
      } catch {
        return fail('malformed');
      }
      if (derivation.version !== GRANT_DERIVATION_VERSION) return fail('unsupported-version');
      if (derivation.missionId !== binding.missionId) return fail('mission-mismatch');
      if (binding.tables?.some((table) => !derivation.tables.includes(table))) return fail('table-not-granted');
      let raw: Uint8Array;
      try {
        raw = new Uint8Array(await subtle().decrypt({ name: 'RSA-OAEP' }, platformKey(privateKey), wrapped));
      } catch {
        return fail('wrap-rejected');
      }
      if (raw.length !== KEY_LENGTH_BYTES) {
        raw.fill(0);
        return fail('malformed');
      }
      try {
        return { ok: true, key: await importAesKey(raw, ['decrypt']), derivation };
      } catch {
        return fail('malformed');
      }
    },
  };
}

/**
 * Creates a grant unwrapper from a PKCS#8 PEM. An undefined or empty PEM gives an unwrapper that
 * answers `not-configured`; an unusable PEM throws (`CRYPTO_INVALID_PEM`,
 * `CRYPTO_PKCS1_NOT_SUPPORTED`, `CRYPTO_KEY_IMPORT_FAILED`) so misconfiguration fails at boot.
 */
export async function createGrantUnwrapperFromPem(
  deps: GrantUnwrapperDeps = {},
  options: GrantUnwrapperPemOptions = {},
): Promise<GrantUnwrapper> {
  const pem = options.privateKeyPem;
  const privateKey = pem === undefined || pem.trim() === '' ? null : await importRsaPrivateKey(pem);
  return createGrantUnwrapper(deps, { privateKey });
}

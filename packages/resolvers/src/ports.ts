import type { GrantDerivation, MissionInputRef, ReplayRecord, ResolvedInput, WebCryptoKey } from '@mana-ai/core';

/** Replays one synced record (core's port; `@mana-ai/projection` provides the real one). */
export type { ReplayRecord };

/** A mission grant unwrapped by the crypto port. */
export interface UnwrappedGrant {
  /** Non-extractable AES-GCM decrypt key. */
  key: WebCryptoKey;
  /** The grant's derivation: its `tables` and `recordIds` form the allowlist. */
  derivation: GrantDerivation;
}

/** The outcome of {@link ResolverCrypto.unwrapGrant}. */
export type GrantUnwrapOutcome = ({ ok: true } & UnwrappedGrant) | { ok: false; reason: string };

/**
 * The crypto collaborator, filled by the runner from `@mana-ai/crypto`
 * (`{ unwrapGrant: (grant, binding) => unwrapper.unwrap(grant, binding), decryptValue }`).
 */
export interface ResolverCrypto {
  /** Unwraps a grant bound to the mission; resolves (never rejects) with a reason on failure. */
  unwrapGrant(grant: unknown, binding: { missionId: string }): Promise<GrantUnwrapOutcome>;
  /** Decrypts one `enc:1:` value; rejects with `CRYPTO_MALFORMED_VALUE` or `CRYPTO_DECRYPT_FAILED`. */
  decryptValue(key: WebCryptoKey, value: string): Promise<unknown>;
}

/** What a resolver knows about the mission it resolves for. */
export interface ResolverContext {
  userId: string;
  missionId: string;
  /** The iteration being planned, written into audit rows. */
  iterationId?: string | undefined;
  /** The unwrapped grant; absent = encrypted inputs are skipped (audited only for `mission-mismatch`). */
  grant?: UnwrappedGrant | undefined;
  /** Why the mission's grant could not be used (a `grant.skipped` reason); absent when it was or there is none. */
  grantSkipReason?: string | undefined;
}

/** Resolves one input reference to prompt text, or `null` when there is nothing to show. */
export type InputResolver = (ref: MissionInputRef, context: ResolverContext) => Promise<ResolvedInput | null>;

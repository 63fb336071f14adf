/** The prefix of an end-to-end-encrypted field value (`enc:1:<iv>.<ciphertext>`; see docs/wire-contract.md). */
export const CIPHERTEXT_PREFIX = 'enc:1:';

/** True when `value` is a string in the `enc:1:` ciphertext format. */
export function isCiphertext(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(CIPHERTEXT_PREFIX);
}

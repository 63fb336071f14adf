import { expect } from 'vitest';

/** A named secret and the text that must not appear. */
export type Secret = [label: string, text: string];

/** The lines of a PEM body, long enough to be unmistakable (every base64 line of the key). */
export function pemFragments(pem: string): string[] {
  return pem
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length >= 16 && !line.startsWith('-----'));
}

/** Asserts that none of `secrets` (nor any `enc:1:` value or PEM armour) occurs in `where`'s `text`. */
export function expectNoSecrets(where: string, text: string, secrets: readonly Secret[]): void {
  const found = secrets.filter(([, secret]) => secret !== '' && text.includes(secret)).map(([label]) => label);
  if (text.includes('enc:1:')) found.push('an enc:1: value');
  if (/-----BEGIN [A-Z ]*KEY-----/.test(text)) found.push('PEM armour');
  expect({ where, found }).toEqual({ where, found: [] });
}

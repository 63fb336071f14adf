/**
 * A WebCrypto key, declared by its shape so that the published types compile for DOM consumers
 * (lib `DOM`) and for Node-only consumers (lib `ES2023` + `@types/node`, which declare no global
 * `CryptoKey`). The platform's own `CryptoKey`, in browsers and in Node, is one.
 */
export interface WebCryptoKey {
  /** The algorithm the key belongs to, e.g. `AES-GCM`. */
  readonly algorithm: { readonly name: string };
  /** Whether `exportKey` may reveal the key material. */
  readonly extractable: boolean;
  /** `secret`, `private` or `public`. */
  readonly type: string;
  /** The operations the key may be used for. */
  readonly usages: readonly string[];
}

/** An operation a WebCrypto key may be used for (the DOM lib's `KeyUsage`, declared for consumers without it). */
export type WebCryptoKeyUsage = 'decrypt' | 'deriveBits' | 'deriveKey' | 'encrypt' | 'sign' | 'unwrapKey' | 'verify' | 'wrapKey';

const MARKER = Symbol.for('@mana-ai/core/error');

/** Options accepted by every mana-ai error. */
export interface ManaAiErrorOptions {
  /** The underlying error, kept for diagnostics (never rendered into messages). */
  cause?: unknown;
  /** Whether repeating the same operation later may succeed. */
  retryable?: boolean;
  /** Extra structured, non-secret details (ids, counts, variable names). */
  details?: Readonly<Record<string, unknown>>;
}

/**
 * Base class of every error thrown by `@mana-ai/*` packages.
 *
 * Each package narrows `code` to its own closed union (`PROJECTION_…`, `CRYPTO_…`). Messages never
 * contain key material, ciphertext, decrypted content or SQL parameters.
 */
export class ManaAiError<Code extends string = string> extends Error {
  /** Machine-readable error code, stable across releases. */
  readonly code: Code;
  /** Whether repeating the operation later may succeed. */
  readonly retryable: boolean;
  /** Extra structured, non-secret details. */
  readonly details: Readonly<Record<string, unknown>>;
  readonly [MARKER] = true;

  constructor(code: Code, message: string, options: ManaAiErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ManaAiError';
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.details = options.details ?? {};
  }

  /**
   * True for any mana-ai error, even one created by another copy of `@mana-ai/core`
   * (`instanceof` fails across copies; the check uses a `Symbol.for` marker).
   */
  static isInstance(value: unknown): value is ManaAiError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[MARKER] === true;
  }
}

/** Error codes raised by `@mana-ai/core` itself. */
export type CoreErrorCode = 'CORE_INVALID_CADENCE' | 'CORE_INVALID_TIME_ZONE' | 'CORE_INVALID_ARGUMENT';

/** An error raised by `@mana-ai/core`. */
export class CoreError extends ManaAiError<CoreErrorCode> {
  constructor(code: CoreErrorCode, message: string, options?: ManaAiErrorOptions) {
    super(code, message, options);
    this.name = 'CoreError';
  }
}

/** True when `value` is a mana-ai error with the given code. */
export function hasErrorCode<Code extends string>(value: unknown, code: Code): value is ManaAiError<Code> {
  return ManaAiError.isInstance(value) && value.code === code;
}

/** A short, safe description of an unknown thrown value (its message only, never its data). */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'string') return error;
  return 'unknown error';
}

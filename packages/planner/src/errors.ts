import { ManaAiError, type ManaAiErrorOptions } from '@mana-ai/core';

/** Error codes raised by `@mana-ai/planner`. */
export type PlannerErrorCode =
  | 'PLANNER_INVALID_CATALOG'
  | 'PLANNER_UNSUPPORTED_PARAMETER_TYPE'
  | 'PLANNER_INVALID_OPTIONS'
  | 'PLANNER_PROVIDER_ERROR';

/** An error raised by `@mana-ai/planner`. */
export class PlannerError extends ManaAiError<PlannerErrorCode> {
  constructor(code: PlannerErrorCode, message: string, options?: ManaAiErrorOptions) {
    super(code, message, options);
    this.name = 'PlannerError';
  }
}

/** How an LLM provider call failed. */
export type ProviderErrorKind =
  /** No answer within the adapter's timeout (headers and body). */
  | 'timeout'
  /** HTTP 429. */
  | 'rate-limit'
  /** HTTP 5xx (other than a provider-reported auth failure). */
  | 'server'
  /** A 2xx answer that is not a usable chat completion (malformed JSON, no choices). */
  | 'bad-response'
  /** HTTP 401/403, or a provider-reported auth failure. */
  | 'auth'
  /** The connection could not be made (refused, reset, DNS). */
  | 'unreachable'
  /** Any other 4xx: the provider refused this request (bad request, blocked content, unknown model). */
  | 'rejected'
  /** The answer's body exceeded the adapter's `maxResponseBytes`; reading stopped there (not retried). */
  | 'too-large';

const KINDS = {
  timeout: true,
  'rate-limit': true,
  server: true,
  'bad-response': true,
  auth: true,
  unreachable: true,
  rejected: true,
  'too-large': true,
} as const satisfies Record<ProviderErrorKind, true>;

/** Every {@link ProviderErrorKind}, e.g. to initialise labelled counters at 0. */
export const PROVIDER_ERROR_KINDS: readonly ProviderErrorKind[] = Object.freeze(Object.keys(KINDS) as ProviderErrorKind[]);

/** Kinds worth retrying with backoff by default. */
export const RETRYABLE_PROVIDER_ERROR_KINDS: readonly ProviderErrorKind[] = ['rate-limit', 'server', 'unreachable'];

/** Options of {@link ProviderCallError}. */
export interface ProviderCallErrorOptions extends ManaAiErrorOptions {
  /** HTTP status, when the provider answered. */
  status?: number;
  /** Provider label (for metrics). */
  provider: string;
  /** How many attempts were made, retries included. */
  attempts: number;
  /** Seconds the provider asked to wait (`retry-after`), when given. */
  retryAfterSeconds?: number;
  /** Kind `too-large`: bytes of the answer that arrived before reading stopped (see {@link ProviderCallError.receivedBytes}). */
  receivedBytes?: number;
}

/** A failed LLM provider call, classified by `kind` (code `PLANNER_PROVIDER_ERROR`). */
export class ProviderCallError extends PlannerError {
  /** How the call failed. */
  readonly kind: ProviderErrorKind;
  /** HTTP status, when the provider answered. */
  readonly status: number | undefined;
  /** Provider label (for metrics). */
  readonly provider: string;
  /** How many attempts were made, retries included. */
  readonly attempts: number;
  /**
   * Kind `too-large`: bytes of the answer's body that arrived before reading stopped at the cap (the
   * cap itself when the declared length alone exceeded it); the planner charges an estimate for them.
   */
  readonly receivedBytes: number | undefined;

  constructor(kind: ProviderErrorKind, message: string, options: ProviderCallErrorOptions) {
    super('PLANNER_PROVIDER_ERROR', message, {
      ...options,
      retryable: options.retryable ?? RETRYABLE_PROVIDER_ERROR_KINDS.includes(kind),
      details: { ...options.details, kind, status: options.status, provider: options.provider, attempts: options.attempts },
    });
    this.name = 'ProviderCallError';
    this.kind = kind;
    this.status = options.status;
    this.provider = options.provider;
    this.attempts = options.attempts;
    this.receivedBytes = options.receivedBytes;
  }
}

/** True for a {@link ProviderCallError}, even from another copy of this package. */
export function isProviderCallError(value: unknown): value is ProviderCallError {
  return ManaAiError.isInstance(value) && value.code === 'PLANNER_PROVIDER_ERROR' && typeof (value as ProviderCallError).kind === 'string';
}

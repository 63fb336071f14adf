import { ManaAiError, type ManaAiErrorOptions } from '@mana-ai/core';

/** Every error code raised by `@mana-ai/research`. */
export type ResearchErrorCode =
  | 'RESEARCH_HTTP_STATUS'
  | 'RESEARCH_TIMEOUT'
  | 'RESEARCH_NETWORK'
  | 'RESEARCH_MALFORMED_RESPONSE'
  | 'RESEARCH_INVALID_OPTIONS';

/** The failure class of a {@link ResearchError}, one per code; short enough for a metric label. */
export type ResearchErrorKind = 'http-status' | 'timeout' | 'network' | 'malformed' | 'invalid-options';

/** The outbound call a {@link ResearchError} comes from (`config` for option validation). */
export type ResearchOperation = 'discover' | 'search' | 'submit' | 'poll' | 'config';

const KIND_BY_CODE: Record<ResearchErrorCode, ResearchErrorKind> = {
  RESEARCH_HTTP_STATUS: 'http-status',
  RESEARCH_TIMEOUT: 'timeout',
  RESEARCH_NETWORK: 'network',
  RESEARCH_MALFORMED_RESPONSE: 'malformed',
  RESEARCH_INVALID_OPTIONS: 'invalid-options',
};

/** Options of a {@link ResearchError} beyond the core ones. */
export interface ResearchErrorOptions extends ManaAiErrorOptions {
  /** The outbound call that failed. */
  operation: ResearchOperation;
  /** The HTTP status, for `RESEARCH_HTTP_STATUS`. */
  status?: number;
}

/**
 * An error raised by `@mana-ai/research`. Messages carry the operation and HTTP status only, never
 * the query, the answer, response bodies or credentials.
 */
export class ResearchError extends ManaAiError<ResearchErrorCode> {
  /** The failure class (one per code). */
  readonly kind: ResearchErrorKind;
  /** The outbound call that failed. */
  readonly operation: ResearchOperation;
  /** The HTTP status, when the service answered with a non-2xx status. */
  readonly status: number | undefined;

  constructor(code: ResearchErrorCode, message: string, options: ResearchErrorOptions) {
    super(code, message, {
      ...options,
      details: { ...options.details, operation: options.operation, ...(options.status === undefined ? {} : { status: options.status }) },
    });
    this.name = 'ResearchError';
    this.kind = KIND_BY_CODE[code];
    this.operation = options.operation;
    this.status = options.status;
  }
}

/** True when `value` is a {@link ResearchError} (works across copies of the package). */
export function isResearchError(value: unknown): value is ResearchError {
  return ManaAiError.isInstance(value) && typeof value.code === 'string' && value.code.startsWith('RESEARCH_');
}

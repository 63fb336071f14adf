import { ManaAiError, type ManaAiErrorOptions } from '@mana-ai/core';

/** Every error code raised by `@mana-ai/resolvers`. */
export type ResolversErrorCode = 'RESOLVERS_INVALID_ARGUMENT' | 'RESOLVERS_AUDIT_READ_FAILED';

/** An error raised by `@mana-ai/resolvers`. */
export class ResolversError extends ManaAiError<ResolversErrorCode> {
  constructor(code: ResolversErrorCode, message: string, options?: ManaAiErrorOptions) {
    super(code, message, options);
    this.name = 'ResolversError';
  }
}

/**
 * A loggable label of a thrown value that cannot leak content: a mana-ai error's code, else the
 * error's class name (database errors carry queries and parameters; resolver errors may quote data).
 */
export function errorLabel(error: unknown): string {
  if (ManaAiError.isInstance(error)) return error.code;
  if (error instanceof Error) return error.name;
  return 'unknown';
}

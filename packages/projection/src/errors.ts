import { ManaAiError, type ManaAiErrorOptions } from '@mana-ai/core';

/** Every error code raised by `@mana-ai/projection`. */
export type ProjectionErrorCode =
  | 'PROJECTION_EMPTY_USER_ID'
  | 'PROJECTION_INVALID_ARGUMENT'
  | 'PROJECTION_MISSION_NOT_FOUND'
  | 'PROJECTION_WRITE_CONFLICT';

/** An error raised by `@mana-ai/projection`. Messages never contain SQL parameters or record content. */
export class ProjectionError extends ManaAiError<ProjectionErrorCode> {
  constructor(code: ProjectionErrorCode, message: string, options?: ManaAiErrorOptions) {
    super(code, message, options);
    this.name = 'ProjectionError';
  }
}

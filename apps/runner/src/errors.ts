import { ManaAiError, type ManaAiErrorOptions } from '@mana-ai/core';

/** Error codes raised by the runner host itself. */
export type RunnerErrorCode =
  | 'RUNNER_CONFIG_INVALID'
  | 'RUNNER_BAD_REQUEST'
  | 'RUNNER_UNAUTHENTICATED'
  | 'RUNNER_NOT_FOUND'
  | 'RUNNER_INTERNAL'
  | 'RUNNER_EMBEDDED_POSTGRES_FAILED'
  | 'RUNNER_DATABASE_UNAVAILABLE'
  | 'RUNNER_SYNC_CHANGES_MISSING'
  | 'RUNNER_MIGRATION_FAILED';

/** An error raised by the runner host. */
export class RunnerError extends ManaAiError<RunnerErrorCode> {
  constructor(code: RunnerErrorCode, message: string, options?: ManaAiErrorOptions) {
    super(code, message, options);
    this.name = 'RunnerError';
  }
}

/** One rejected environment variable: its name and what was expected (never its value). */
export interface ConfigIssue {
  variable: string;
  expected: string;
}

/** The configuration could not be parsed; names every bad variable and never echoes a value. */
export class ConfigError extends RunnerError {
  /** Every rejected variable, in reference order (cross-variable checks last). */
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], options: { cause?: unknown } = {}) {
    const list = issues.map((issue) => `${issue.variable} (expected ${issue.expected})`).join('; ');
    super('RUNNER_CONFIG_INVALID', `invalid configuration: ${list}`, {
      ...options,
      details: { variables: issues.map((issue) => issue.variable) },
    });
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** Which step of starting the embedded PostgreSQL failed. */
export type EmbeddedPostgresStep = 'prepare' | 'initdb' | 'start';

/**
 * The embedded PostgreSQL could not be prepared, initialised or started. The message says what
 * failed and what to do (use an existing database via `DATABASE_URL`); it never holds the password.
 */
export class EmbeddedPostgresError extends RunnerError {
  /** The step that failed. */
  readonly step: EmbeddedPostgresStep;

  constructor(step: EmbeddedPostgresStep, reason: string, options: { cause?: unknown } = {}) {
    super(
      'RUNNER_EMBEDDED_POSTGRES_FAILED',
      `embedded PostgreSQL failed (${step}): ${reason}. Set DATABASE_URL to use an existing PostgreSQL instead ` +
        '(see docs/troubleshooting.md#embedded-postgresql)',
      { ...options, details: { step } },
    );
    this.name = 'EmbeddedPostgresError';
    this.step = step;
  }
}

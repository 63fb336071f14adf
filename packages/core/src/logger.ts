/** One log method: pino's object-first signature (`log(context, message)`). */
export interface LogMethod {
  (context: Record<string, unknown>, message: string): void;
  (message: string): void;
}

/**
 * The logger port every package accepts. Any pino logger satisfies it. Packages log an object
 * first and a constant message second, and never put secrets or user content in either.
 */
export interface Logger {
  trace: LogMethod;
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
  fatal: LogMethod;
  /** A logger that adds `bindings` to every line. */
  child(bindings: Record<string, unknown>): Logger;
}

const noop = (): void => {};

/** A logger that drops everything: the default of every package. */
export const noopLogger: Logger = {
  trace: noop,
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  fatal: noop,
  child: () => noopLogger,
};

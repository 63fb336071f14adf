import type { Logger } from '@mana-ai/core';

/** A logger that keeps every call (level, context, message) as one JSON line. */
export interface CaptureLogger extends Logger {
  readonly lines: string[];
}

/** Creates a {@link CaptureLogger}; children share the same lines. */
export function createCaptureLogger(lines: string[] = [], bindings: Record<string, unknown> = {}): CaptureLogger {
  const method =
    (level: string) =>
    (...args: unknown[]): void => {
      lines.push(JSON.stringify({ level, bindings, args }));
    };
  return {
    lines,
    trace: method('trace'),
    debug: method('debug'),
    info: method('info'),
    warn: method('warn'),
    error: method('error'),
    fatal: method('fatal'),
    child: (extra) => createCaptureLogger(lines, { ...bindings, ...extra }),
  };
}

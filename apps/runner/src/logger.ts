import { type DestinationStream, type Logger as PinoLogger, pino } from 'pino';
import type { LogLevel } from './config.js';

const SECRET_FIELDS = ['grant', 'wrappedKey', 'privateKey', 'password'];
const SECRET_HEADERS = ['.authorization', '["x-service-key"]', '.cookie', '["set-cookie"]'];

/**
 * pino redact paths: credential headers wherever a request or response is logged, and secret
 * fields at the top level and up to two levels deep. postgres.js errors may carry `parameters`.
 */
export const REDACT_PATHS: readonly string[] = [
  ...['req.headers', 'res.headers', 'headers', 'request.headers', 'response.headers'].flatMap((parent) =>
    SECRET_HEADERS.map((header) => `${parent}${header}`),
  ),
  ...SECRET_FIELDS.flatMap((field) => [field, `*.${field}`, `*.*.${field}`]),
  'err.parameters',
  'error.parameters',
];

/** Options of {@link createLogger}. */
export interface CreateLoggerOptions {
  level: LogLevel;
  /** Where lines go (default stdout); the CLI's `tick --once` passes stderr. */
  destination?: DestinationStream;
}

/** The runner's pino logger: JSON lines, `service: "mana-ai"`, secrets redacted. */
export function createLogger(options: CreateLoggerOptions): PinoLogger {
  return pino(
    {
      level: options.level,
      base: { service: 'mana-ai' },
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    },
    options.destination ?? pino.destination(1),
  );
}

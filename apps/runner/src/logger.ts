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
  /** The instance's `MANA_AI_INSTANCE_ID` (or generated id), on every line as `instanceId`. */
  instanceId?: string;
  /** Where lines go (default stdout); the CLI's `tick --once` passes stderr. */
  destination?: DestinationStream;
}

interface LoggedRequest {
  method?: string;
  url?: string;
  hostname?: string;
  ip?: string;
  socket?: { remotePort?: number };
}

/**
 * Fastify's request line without the query string: a caller may put a key or a user's text there
 * (`?x-service-key=…`), and the route pattern plus the path is what operators need.
 */
export function serializeRequest(request: LoggedRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: typeof request.url === 'string' ? request.url.split('?', 1)[0] : undefined,
    hostname: request.hostname,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

/**
 * The runner's pino logger: JSON lines with the level's name (`"level":"info"`), an ISO 8601 UTC
 * `time`, `service: "mana-ai"` and the `instanceId`; secrets redacted, no query strings.
 */
export function createLogger(options: CreateLoggerOptions): PinoLogger {
  return pino(
    {
      level: options.level,
      base: { service: 'mana-ai', ...(options.instanceId === undefined ? {} : { instanceId: options.instanceId }) },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
      serializers: { req: serializeRequest },
    },
    options.destination ?? pino.destination(1),
  );
}

import { assertTimeZone } from '@mana-ai/core';
import { DEFAULT_MAX_SUMMARY_CHARS, DEFAULT_MAX_TOOL_ARGUMENT_BYTES, DEFAULT_MAX_TOOL_CALLS, OPENAI_ADAPTER_DEFAULTS } from '@mana-ai/planner';
import { DEFAULT_MAX_INPUTS_PER_MISSION } from '@mana-ai/resolvers';
import { z } from 'zod';
import { type ConfigIssue, ConfigError } from './errors.js';

/** The `MANA_SERVICE_KEY` default: fine for development, refused when `NODE_ENV=production`. */
export const DEFAULT_SERVICE_KEY = 'dev-service-key';

/** The policy modes of `POLICY_MODE` (docs/wire-contract.md#tool-calls-on-the-wire). */
export type PolicyMode = 'off' | 'log-only' | 'enforce';

/** pino log levels accepted by `LOG_LEVEL`. */
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** The runner's configuration, parsed once from the environment by {@link loadConfig}. */
export interface RunnerConfig {
  /** `PORT`: HTTP port. */
  port: number;
  /** `HOST`: address the HTTP server binds to. */
  host: string;
  /** `DATABASE_URL` (alias `SYNC_DATABASE_URL`); undefined ⇒ embedded Postgres in `.mana-ai/pg`. */
  databaseUrl: string | undefined;
  /** `MANA_LLM_URL`: OpenAI-compatible LLM base URL, trailing `/` stripped. */
  llmUrl: string;
  /** `MANA_API_URL`: news-research base URL. */
  apiUrl: string;
  /** `MANA_RESEARCH_URL`: deep-research base URL. */
  researchUrl: string;
  /** `MANA_AI_DEEP_RESEARCH_ENABLED`. */
  deepResearchEnabled: boolean;
  /** `MANA_SERVICE_KEY`: inbound `X-Service-Key` and outbound service credential. */
  serviceKey: string;
  /** `MANA_SERVICE_KEY_PREVIOUS`: a second inbound key accepted on `/internal/*` while callers move to a new one. */
  previousServiceKey: string | undefined;
  /** `TICK_INTERVAL_MS`: the dispatcher's longest sleep. */
  tickIntervalMs: number;
  /** `TICK_ENABLED`. */
  tickEnabled: boolean;
  /** `MANA_AI_RETRY_AFTER_MS`: how long a failed or skipped mission waits before it is claimed again. */
  retryAfterMs: number;
  /** `MANA_AI_PROBE_INTERVAL_MS`: probe interval for new log rows when the change trigger is missing. */
  probeIntervalMs: number;
  /** `MANA_AI_MAX_RUN_MS`: wall-time bound of one mission run. */
  maxRunMs: number;
  /** `MANA_AI_MAX_INPUTS_PER_MISSION`: inputs of one mission resolved at most. */
  maxInputsPerMission: number;
  /** `MANA_AI_PRIVATE_KEY_PEM`: PKCS#8 PEM of the grant key; undefined ⇒ grants not configured. */
  privateKeyPem: string | undefined;
  /** `POLICY_MODE`. */
  policyMode: PolicyMode;
  /** `MANA_AI_COMPACT_MAX_CTX`: context window (tokens) compaction is measured against; 0 disables it. */
  compactMaxContext: number;
  /** `MANA_AI_COMPACT_MODEL`: model of the compaction call; unset = `MANA_LLM_MODEL`. */
  compactModel: string | undefined;
  /** `MANA_AI_GOALS_APP_ID`: sync app id the goals resolver replays goal records from. */
  goalsAppId: string;
  /** `MANA_AI_TOOL_CATALOG_PATH`: a JSON tool catalog replacing the built-in one; unset = built-in. */
  toolCatalogPath: string | undefined;
  /** `OTEL_EXPORTER_OTLP_ENDPOINT`: enables tracing when set. */
  otelEndpoint: string | undefined;
  /** `NODE_ENV`. */
  nodeEnv: string | undefined;
  /** `MANA_AUTH_URL`: base URL of the auth service (JWKS). */
  authUrl: string;
  /** `MANA_AUTH_JWKS_URL`: JWKS of the JWT keys; undefined ⇒ `<MANA_AUTH_URL>/api/v1/auth/jwks` (see {@link jwksUrlOf}). */
  authJwksUrl: string | undefined;
  /** `JWT_ISSUER`: an extra accepted JWT issuer. */
  jwtIssuer: string | undefined;
  /** `JWT_AUDIENCE`. */
  jwtAudience: string;
  /** `DEV_BYPASS_AUTH`: JWT bypass, honoured only when `NODE_ENV=development`. */
  devBypassAuth: boolean;
  /** `DEV_USER_ID`: user of the JWT bypass. */
  devUserId: string;
  /** `MANA_AI_CORS_ORIGINS`: browser origins allowed to call `/api/v1/me/*`. */
  corsOrigins: readonly string[];
  /** `MANA_AI_CONCURRENCY`: missions planned at once per instance. */
  concurrency: number;
  /** `MANA_AI_DEFAULT_TIMEZONE`: zone of `daily`/`weekly`/`cron` cadences of missions without one. */
  defaultTimeZone: string;
  /** `LOG_LEVEL`. */
  logLevel: LogLevel;
  /** `MANA_AI_SHUTDOWN_TIMEOUT_MS`: how long shutdown waits for the pass and mission runs in flight. */
  shutdownTimeoutMs: number;
  /** `MANA_AI_BOOT_TIMEOUT_MS`: how long boot waits for the database to answer before it gives up. */
  bootTimeoutMs: number;
  /** `MANA_LLM_MODEL`: the planner's model. */
  llmModel: string;
  /** `MANA_LLM_API_KEY`: outbound LLM key; unset = `MANA_SERVICE_KEY`, as upstream. */
  llmApiKey: string | undefined;
  /** `MANA_LLM_AUTH_STYLE`: how the LLM key is sent. */
  llmAuthStyle: 'bearer' | 'x-api-key';
  /** `MANA_LLM_TIMEOUT_MS`: time for one LLM attempt. */
  llmTimeoutMs: number;
  /** `MANA_LLM_MAX_RETRIES`: retries of one LLM call on 429/5xx/unreachable. */
  llmMaxRetries: number;
  /** `MANA_AI_MAX_ROUNDS`: planner rounds per mission. */
  maxRounds: number;
  /** `MANA_LLM_MAX_RESPONSE_BYTES`: largest LLM answer body read. */
  llmMaxResponseBytes: number;
  /** `MANA_AI_MAX_TOOL_CALLS`: tool calls answered per plan. */
  maxToolCalls: number;
  /** `MANA_AI_MAX_TOOL_ARGUMENT_BYTES`: largest arguments of one tool call. */
  maxToolArgumentBytes: number;
  /** `MANA_AI_MAX_SUMMARY_CHARS`: longest plan summary. */
  maxSummaryChars: number;
  /** `MANA_AI_LOCALE`: language of prompts and tool descriptions. */
  locale: 'de' | 'en';
  /** `MANA_API_AUTH`: how shallow research authenticates to mana-api. */
  apiAuth: 'service-key' | 'jwt' | 'none';
  /** `MANA_API_JWT_PRIVATE_KEY_PEM`: PKCS#8 PEM that signs the per-user JWTs of `MANA_API_AUTH=jwt`. */
  apiJwtPrivateKeyPem: string | undefined;
  /** `MANA_API_JWT_ALGORITHM`: JWS algorithm of those JWTs. */
  apiJwtAlgorithm: 'RS256' | 'ES256' | 'EdDSA';
  /** `MANA_API_JWT_KEY_ID`: `kid` header of those JWTs; unset = none. */
  apiJwtKeyId: string | undefined;
  /** `MANA_API_JWT_ISSUER`: `iss` claim of those JWTs. */
  apiJwtIssuer: string;
  /** `MANA_API_JWT_TIER`: `tier` claim of those JWTs (mana-api's news research requires `beta`). */
  apiJwtTier: string;
  /** `MANA_AI_LEASE_MS`: how long a claimed mission stays leased to this instance. */
  leaseMs: number;
  /** `MANA_AI_INSTANCE_ID`: lease owner name of this instance; unset = host, pid and a random suffix. */
  instanceId: string | undefined;
  /** `MANA_AI_MAX_MISSIONS_PER_TICK`: missions one pass (POST /internal/tick, `tick --once`) claims at most. */
  maxMissionsPerTick: number;
}

/** Reference metadata of one environment variable (for docs and generated references). */
export interface ConfigVariable {
  /** Variable name. */
  name: string;
  /** Other names read when `name` is unset. */
  aliases: readonly string[];
  /** The default as written in the environment; undefined when unset is meaningful. */
  default: string | undefined;
  /** What the variable does. */
  description: string;
  /** What a valid value looks like. */
  expected: string;
  /** True when the value is a credential (never logged, never echoed). */
  secret: boolean;
}

interface VariableSpec<T> extends Omit<ConfigVariable, 'aliases' | 'secret'> {
  aliases?: readonly string[];
  secret?: boolean;
  schema: z.ZodType<T, string | undefined>;
}

const TRUE_WORDS = ['true', '1', 'yes', 'on'];
const FALSE_WORDS = ['false', '0', 'no', 'off'];

const integer = (min: number, max: number) =>
  z.string().trim().regex(/^\d+$/).transform(Number).pipe(z.number().int().min(min).max(max));

const flag = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum([...TRUE_WORDS, ...FALSE_WORDS]))
  .transform((word) => TRUE_WORDS.includes(word));

function isUrl(value: string, protocols: readonly string[]): boolean {
  try {
    return protocols.includes(new URL(value).protocol);
  } catch {
    return false;
  }
}

const httpUrl = z
  .string()
  .trim()
  .refine((value) => isUrl(value, ['http:', 'https:']))
  .transform((value) => value.replace(/\/+$/, ''));

const postgresUrl = z
  .string()
  .trim()
  .refine((value) => isUrl(value, ['postgres:', 'postgresql:']));

const text = z.string().trim().min(1);

// A comma list of http(s) origins (scheme, host, optional port; no path).
const origins = z
  .string()
  .optional()
  .transform((value) =>
    (value ?? '')
      .split(',')
      .map((origin) => origin.trim().replace(/\/+$/, ''))
      .filter((origin) => origin !== ''),
  )
  .refine((list) => list.every((origin) => isUrl(origin, ['http:', 'https:']) && new URL(origin).origin === origin));

const timeZone = z
  .string()
  .trim()
  .refine((zone) => {
    try {
      assertTimeZone(zone);
      return true;
    } catch {
      return false;
    }
  });

// Env files often carry PEMs on one line with literal "\n".
const pem = z
  .string()
  .transform((value) => value.replace(/\\n/g, '\n').trim())
  .refine((value) => /-----BEGIN PRIVATE KEY-----[\s\S]+-----END PRIVATE KEY-----/.test(value));

const specs: { [K in keyof RunnerConfig]: VariableSpec<RunnerConfig[K]> } = {
  port: { name: 'PORT', default: '3067', description: 'HTTP port.', expected: 'an integer from 1 to 65535', schema: integer(1, 65_535) },
  host: { name: 'HOST', default: '0.0.0.0', description: 'Address the HTTP server binds to.', expected: 'a host name or IP address', schema: text },
  databaseUrl: {
    name: 'DATABASE_URL',
    aliases: ['SYNC_DATABASE_URL'],
    default: undefined,
    description: 'PostgreSQL URL of the mana_sync database. Unset: an embedded PostgreSQL with its data in .mana-ai/pg.',
    expected: 'a postgres:// or postgresql:// URL',
    secret: true,
    schema: postgresUrl.optional(),
  },
  llmUrl: { name: 'MANA_LLM_URL', default: 'http://localhost:3020', description: 'OpenAI-compatible LLM base URL (trailing / stripped).', expected: 'an http(s) URL', schema: httpUrl },
  apiUrl: { name: 'MANA_API_URL', default: 'http://localhost:3060', description: 'Base URL of the news-research API (shallow research).', expected: 'an http(s) URL', schema: httpUrl },
  researchUrl: { name: 'MANA_RESEARCH_URL', default: 'http://localhost:3068', description: 'Base URL of mana-research (deep research).', expected: 'an http(s) URL', schema: httpUrl },
  deepResearchEnabled: {
    name: 'MANA_AI_DEEP_RESEARCH_ENABLED',
    default: 'false',
    description: 'Use deep research (mana-research) instead of shallow web research.',
    expected: 'true/false (also 1/0, yes/no, on/off)',
    schema: flag,
  },
  serviceKey: {
    name: 'MANA_SERVICE_KEY',
    default: DEFAULT_SERVICE_KEY,
    description: 'Shared service key: inbound X-Service-Key of /internal/*, outbound LLM bearer and mana-research key. Must be changed in production.',
    expected: 'a non-empty string (not the default when NODE_ENV=production)',
    secret: true,
    schema: text,
  },
  previousServiceKey: {
    name: 'MANA_SERVICE_KEY_PREVIOUS',
    default: undefined,
    description:
      'The service key being replaced: accepted as inbound X-Service-Key of /internal/* besides MANA_SERVICE_KEY (never sent anywhere), so callers can move to a new key without downtime. Unset it once they have (see docs/operations.md#rotating-the-service-key).',
    expected: 'a non-empty string',
    secret: true,
    schema: text.optional(),
  },
  tickIntervalMs: {
    name: 'TICK_INTERVAL_MS',
    default: '5000',
    description:
      'The longest the dispatcher sleeps: at least this often it refreshes the snapshots and claims due missions, even when no wake-up (due time, new log rows, freed slot) came.',
    expected: 'an integer from 100 to 86400000',
    schema: integer(100, 86_400_000),
  },
  tickEnabled: {
    name: 'TICK_ENABLED',
    default: 'true',
    description: 'Run the dispatcher continuously; false plans only on POST /internal/tick and `mana-ai tick --once`.',
    expected: 'true/false (also 1/0, yes/no, on/off)',
    schema: flag,
  },
  retryAfterMs: {
    name: 'MANA_AI_RETRY_AFTER_MS',
    default: '60000',
    description: 'How long a mission that failed or was skipped (paused agent, budget, pending research) waits before it is claimed again.',
    expected: 'an integer from 1000 to 86400000',
    schema: integer(1000, 86_400_000),
  },
  probeIntervalMs: {
    name: 'MANA_AI_PROBE_INTERVAL_MS',
    default: '1000',
    description:
      'Without the change trigger on sync_changes (see docs/database.md), how often one cheap statement asks whether the log holds new mission or agent rows.',
    expected: 'an integer from 100 to 3600000',
    schema: integer(100, 3_600_000),
  },
  maxRunMs: {
    name: 'MANA_AI_MAX_RUN_MS',
    default: '600000',
    description: 'Wall-time bound of one mission run (gates, research, inputs, planner loop, write-back); past it the run is aborted.',
    expected: 'an integer from 1000 to 86400000',
    schema: integer(1000, 86_400_000),
  },
  maxInputsPerMission: {
    name: 'MANA_AI_MAX_INPUTS_PER_MISSION',
    default: String(DEFAULT_MAX_INPUTS_PER_MISSION),
    description:
      'Inputs of one mission resolved (read, decrypted, audited) per run: the first ones in the order the mission lists them; the rest are dropped with a warning and counted in mana_ai_inputs_dropped_total.',
    expected: 'an integer from 1 to 100000',
    schema: integer(1, 100_000),
  },
  privateKeyPem: {
    name: 'MANA_AI_PRIVATE_KEY_PEM',
    default: undefined,
    description: 'PKCS#8 PEM private key that unwraps mission grants; literal \\n are read as newlines. Unset: grants are skipped as not-configured.',
    expected: 'a PKCS#8 PEM (-----BEGIN PRIVATE KEY-----)',
    secret: true,
    schema: pem.optional(),
  },
  policyMode: {
    name: 'POLICY_MODE',
    default: 'log-only',
    description: 'Prompt-injection marker policy: off, log-only or enforce (case-insensitive).',
    expected: 'off, log-only or enforce',
    schema: z.string().trim().toLowerCase().pipe(z.enum(['off', 'log-only', 'enforce'])),
  },
  compactMaxContext: {
    name: 'MANA_AI_COMPACT_MAX_CTX',
    default: '128000',
    description:
      'Context window (tokens) of MANA_LLM_MODEL; the planner compacts its history when a request reaches 92 % of it. The default fits the smallest model mana/reasoning resolves to; 0 disables compaction.',
    expected: 'a non-negative integer',
    schema: integer(0, Number.MAX_SAFE_INTEGER),
  },
  compactModel: {
    name: 'MANA_AI_COMPACT_MODEL',
    default: undefined,
    description: 'Model of the compaction call (a small, cheap model is enough). Unset: MANA_LLM_MODEL.',
    expected: 'a non-empty string',
    schema: text.optional(),
  },
  goalsAppId: {
    name: 'MANA_AI_GOALS_APP_ID',
    default: 'goals',
    description: 'Sync app id (sync_changes.app_id) the goals resolver reads goal records from; see docs/wire-contract.md#input-records.',
    expected: 'a non-empty string',
    schema: text,
  },
  toolCatalogPath: {
    name: 'MANA_AI_TOOL_CATALOG_PATH',
    default: undefined,
    description: 'Path of a JSON tool catalog (the contract format) replacing the built-in one; read once at boot. Unset: the built-in catalog.',
    expected: 'a path to a readable JSON file',
    schema: text.optional(),
  },
  otelEndpoint: {
    name: 'OTEL_EXPORTER_OTLP_ENDPOINT',
    default: undefined,
    description: 'OTLP/HTTP endpoint; enables tracing when set.',
    expected: 'an http(s) URL',
    schema: httpUrl.optional(),
  },
  nodeEnv: { name: 'NODE_ENV', default: undefined, description: 'production refuses the default service key; development allows DEV_BYPASS_AUTH.', expected: 'a non-empty string', schema: text.optional() },
  authUrl: { name: 'MANA_AUTH_URL', default: 'http://localhost:3001', description: 'Base URL of mana-auth; JWKS at /api/v1/auth/jwks.', expected: 'an http(s) URL', schema: httpUrl },
  authJwksUrl: {
    name: 'MANA_AUTH_JWKS_URL',
    default: undefined,
    description: 'URL of the JWKS that verifies user JWTs. Unset: <MANA_AUTH_URL>/api/v1/auth/jwks.',
    expected: 'an http(s) URL',
    schema: httpUrl.optional(),
  },
  jwtIssuer: { name: 'JWT_ISSUER', default: undefined, description: 'An additional accepted JWT issuer.', expected: 'a non-empty string', schema: text.optional() },
  jwtAudience: { name: 'JWT_AUDIENCE', default: 'mana', description: 'Expected JWT audience.', expected: 'a non-empty string', schema: text },
  devBypassAuth: {
    name: 'DEV_BYPASS_AUTH',
    default: 'false',
    description: 'Skip JWT verification (only when NODE_ENV=development).',
    expected: 'true/false (also 1/0, yes/no, on/off)',
    schema: flag,
  },
  devUserId: { name: 'DEV_USER_ID', default: '00000000-0000-0000-0000-000000000000', description: 'User id of the JWT bypass.', expected: 'a non-empty string', schema: text },
  corsOrigins: {
    name: 'MANA_AI_CORS_ORIGINS',
    default: undefined,
    description: 'Comma list of webapp origins allowed (CORS) to call GET /api/v1/me/ai-audit from a browser. Unset: none.',
    expected: 'comma-separated http(s) origins such as https://mana.how',
    schema: origins,
  },
  concurrency: { name: 'MANA_AI_CONCURRENCY', default: '8', description: 'Missions planned in parallel per instance.', expected: 'an integer from 1 to 1024', schema: integer(1, 1024) },
  defaultTimeZone: {
    name: 'MANA_AI_DEFAULT_TIMEZONE',
    default: 'Europe/Berlin',
    description: 'IANA zone for daily/weekly/cron cadences of missions without a timezone.',
    expected: 'an IANA time zone such as Europe/Berlin',
    schema: timeZone,
  },
  logLevel: {
    name: 'LOG_LEVEL',
    default: 'info',
    description: 'pino log level.',
    expected: 'fatal, error, warn, info, debug, trace or silent',
    schema: z.string().trim().toLowerCase().pipe(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])),
  },
  shutdownTimeoutMs: {
    name: 'MANA_AI_SHUTDOWN_TIMEOUT_MS',
    default: '30000',
    description: 'On SIGTERM/SIGINT, how long to wait for the mission runs in flight before aborting them.',
    expected: 'an integer from 0 to 3600000',
    schema: integer(0, 3_600_000),
  },
  bootTimeoutMs: {
    name: 'MANA_AI_BOOT_TIMEOUT_MS',
    default: '30000',
    description:
      'How long boot (and `migrate`, `tick --once`) waits for the database to answer, retrying with backoff, before it exits 1 naming the last error.',
    expected: 'an integer from 1000 to 3600000',
    schema: integer(1000, 3_600_000),
  },
  llmModel: { name: 'MANA_LLM_MODEL', default: 'mana/reasoning', description: 'Model the planner asks the LLM for.', expected: 'a non-empty string', schema: text },
  llmApiKey: {
    name: 'MANA_LLM_API_KEY',
    default: undefined,
    description: 'Key sent to the LLM. Unset: MANA_SERVICE_KEY, as the original service did.',
    expected: 'a non-empty string',
    secret: true,
    schema: text.optional(),
  },
  llmAuthStyle: {
    name: 'MANA_LLM_AUTH_STYLE',
    default: 'bearer',
    description: 'How the LLM key is sent: bearer (Authorization: Bearer) or x-api-key (X-API-Key).',
    expected: 'bearer or x-api-key',
    schema: z.string().trim().toLowerCase().pipe(z.enum(['bearer', 'x-api-key'])),
  },
  llmTimeoutMs: {
    name: 'MANA_LLM_TIMEOUT_MS',
    default: '120000',
    description: 'Time for one LLM attempt (headers and body).',
    expected: 'an integer from 1000 to 3600000',
    schema: integer(1000, 3_600_000),
  },
  llmMaxRetries: {
    name: 'MANA_LLM_MAX_RETRIES',
    default: '2',
    description: 'Retries of one LLM call after 429, 5xx or a failed connection (with backoff).',
    expected: 'an integer from 0 to 10',
    schema: integer(0, 10),
  },
  maxRounds: { name: 'MANA_AI_MAX_ROUNDS', default: '5', description: 'Planner rounds (LLM calls with tools) per mission.', expected: 'an integer from 1 to 50', schema: integer(1, 50) },
  llmMaxResponseBytes: {
    name: 'MANA_LLM_MAX_RESPONSE_BYTES',
    default: String(OPENAI_ADAPTER_DEFAULTS.maxResponseBytes),
    description:
      'Largest LLM answer body read, in bytes; reading stops there and the plan fails with provider error kind too-large (the answer is not stored; a token per 4 bytes received counts against the agent budget).',
    expected: 'an integer from 1024 to 104857600',
    schema: integer(1024, 104_857_600),
  },
  maxToolCalls: {
    name: 'MANA_AI_MAX_TOOL_CALLS',
    default: String(DEFAULT_MAX_TOOL_CALLS),
    description:
      'Tool calls the planner answers per plan (recorded and rejected); calls past it are dropped, and the plan is written with the calls kept.',
    expected: 'an integer from 1 to 1000',
    schema: integer(1, 1000),
  },
  maxToolArgumentBytes: {
    name: 'MANA_AI_MAX_TOOL_ARGUMENT_BYTES',
    default: String(DEFAULT_MAX_TOOL_ARGUMENT_BYTES),
    description: 'Largest arguments of one tool call (JSON, UTF-8 bytes); a larger call is rejected and the model told so.',
    expected: 'an integer from 256 to 1048576',
    schema: integer(256, 1_048_576),
  },
  maxSummaryChars: {
    name: 'MANA_AI_MAX_SUMMARY_CHARS',
    default: String(DEFAULT_MAX_SUMMARY_CHARS),
    description: 'Longest plan summary in characters; a longer one is cut at a character boundary.',
    expected: 'an integer from 1 to 100000',
    schema: integer(1, 100_000),
  },
  locale: {
    name: 'MANA_AI_LOCALE',
    default: 'de',
    description: 'Language of the planner prompts, reminders and tool descriptions.',
    expected: 'de or en',
    schema: z.string().trim().toLowerCase().pipe(z.enum(['de', 'en'])),
  },
  apiAuth: {
    name: 'MANA_API_AUTH',
    default: 'service-key',
    description:
      "How shallow research authenticates to mana-api: jwt (a short-lived JWT per mission's user, Authorization: Bearer; what mana-api's news-research routes accept), service-key (X-Service-Key and X-User-Id) or none.",
    expected: 'jwt, service-key or none',
    schema: z.string().trim().toLowerCase().pipe(z.enum(['jwt', 'service-key', 'none'])),
  },
  apiJwtPrivateKeyPem: {
    name: 'MANA_API_JWT_PRIVATE_KEY_PEM',
    default: undefined,
    description:
      'PKCS#8 PEM private key that signs the JWTs of MANA_API_AUTH=jwt; its public key must be in the JWKS mana-api verifies against. Literal \\n are read as newlines. Required when MANA_API_AUTH=jwt.',
    expected: 'a PKCS#8 PEM (-----BEGIN PRIVATE KEY-----)',
    secret: true,
    schema: pem.optional(),
  },
  apiJwtAlgorithm: {
    name: 'MANA_API_JWT_ALGORITHM',
    default: 'RS256',
    description: 'JWS algorithm of the MANA_API_AUTH=jwt tokens (must match the key).',
    expected: 'RS256, ES256 or EdDSA',
    schema: z.string().trim().pipe(z.enum(['RS256', 'ES256', 'EdDSA'])),
  },
  apiJwtKeyId: { name: 'MANA_API_JWT_KEY_ID', default: undefined, description: 'kid header of the MANA_API_AUTH=jwt tokens.', expected: 'a non-empty string', schema: text.optional() },
  apiJwtIssuer: {
    name: 'MANA_API_JWT_ISSUER',
    default: 'https://auth.mana.how',
    description: 'iss claim of the MANA_API_AUTH=jwt tokens (one of the issuers mana-api accepts); the audience is JWT_AUDIENCE.',
    expected: 'a non-empty string',
    schema: text,
  },
  apiJwtTier: {
    name: 'MANA_API_JWT_TIER',
    default: 'beta',
    description: "tier claim of the MANA_API_AUTH=jwt tokens (mana-api's news research requires beta).",
    expected: 'a non-empty string',
    schema: text,
  },
  leaseMs: {
    name: 'MANA_AI_LEASE_MS',
    default: '60000',
    description:
      'How long a claimed mission stays leased; the running instance renews it every third of this, so a crashed instance\'s missions are planned by another one after at most this long.',
    expected: 'an integer from 10000 to 86400000',
    schema: integer(10_000, 86_400_000),
  },
  instanceId: {
    name: 'MANA_AI_INSTANCE_ID',
    default: undefined,
    description: 'Lease owner name of this instance (unique per instance). Unset: host name, pid and a random suffix.',
    expected: 'a non-empty string',
    schema: text.optional(),
  },
  maxMissionsPerTick: {
    name: 'MANA_AI_MAX_MISSIONS_PER_TICK',
    default: '10000',
    description: 'Missions one pass (POST /internal/tick, `mana-ai tick --once`) claims at most.',
    expected: 'an integer from 1 to 1000000',
    schema: integer(1, 1_000_000),
  },
};

/** Every variable the runner reads, in reference order, with default and description. */
export const CONFIG_VARIABLES: readonly ConfigVariable[] = Object.values(specs).map(
  (spec: VariableSpec<unknown>): ConfigVariable => ({
    name: spec.name,
    aliases: spec.aliases ?? [],
    default: spec.default,
    description: spec.description,
    expected: spec.expected,
    secret: spec.secret ?? false,
  }),
);

/** An environment to parse: `process.env` or a plain object in tests. */
export type Environment = Readonly<Record<string, string | undefined>>;

function read(env: Environment, spec: VariableSpec<unknown>): string | undefined {
  for (const name of [spec.name, ...(spec.aliases ?? [])]) {
    const value = env[name];
    // An empty variable means "unset", as in most env-file tooling.
    if (value !== undefined && value !== '') return value;
  }
  return spec.default;
}

/**
 * Parses and validates `env`. Throws one {@link ConfigError} naming every bad variable; values are
 * never part of the error, since a secret may be among them.
 */
export function parseConfig(env: Environment): RunnerConfig {
  const issues: ConfigIssue[] = [];
  const values: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(specs) as [keyof RunnerConfig, VariableSpec<unknown>][]) {
    const result = spec.schema.safeParse(read(env, spec));
    if (result.success) values[key] = result.data;
    else issues.push({ variable: spec.name, expected: spec.expected });
  }
  const config = values as unknown as RunnerConfig;
  if (!issues.some((issue) => issue.variable === specs.serviceKey.name) && config.nodeEnv === 'production' && config.serviceKey === DEFAULT_SERVICE_KEY) {
    issues.push({ variable: specs.serviceKey.name, expected: 'a non-default value when NODE_ENV=production' });
  }
  if (!issues.some((issue) => issue.variable === specs.apiAuth.name) && config.apiAuth === 'jwt' && config.apiJwtPrivateKeyPem === undefined) {
    issues.push({ variable: specs.apiJwtPrivateKeyPem.name, expected: 'a PKCS#8 PEM when MANA_API_AUTH=jwt' });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return Object.freeze(config);
}

/** The JWKS URL of `config`: `MANA_AUTH_JWKS_URL`, else `<MANA_AUTH_URL>/api/v1/auth/jwks`. */
export function jwksUrlOf(config: Pick<RunnerConfig, 'authUrl' | 'authJwksUrl'>): string {
  return config.authJwksUrl ?? `${config.authUrl}/api/v1/auth/jwks`;
}

/** Parses the process environment once; the only place the runner reads `process.env`. */
export function loadConfig(): RunnerConfig {
  return parseConfig(process.env);
}

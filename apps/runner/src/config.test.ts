import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES, DEFAULT_SERVICE_KEY, jwksUrlOf, parseConfig } from './config.js';
import { ConfigError } from './errors.js';

function configError(env: Record<string, string>): ConfigError {
  try {
    parseConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('parseConfig accepted the environment');
}

const PEM = '-----BEGIN PRIVATE KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEA\n-----END PRIVATE KEY-----';

describe('parseConfig', () => {
  it('returns the upstream defaults when the environment is empty', () => {
    expect(parseConfig({})).toEqual({
      port: 3067,
      host: '0.0.0.0',
      databaseUrl: undefined,
      llmUrl: 'http://localhost:3020',
      apiUrl: 'http://localhost:3060',
      researchUrl: 'http://localhost:3068',
      deepResearchEnabled: false,
      serviceKey: DEFAULT_SERVICE_KEY,
      previousServiceKey: undefined,
      tickIntervalMs: 5000,
      tickEnabled: true,
      retryAfterMs: 60_000,
      probeIntervalMs: 1000,
      maxRunMs: 600_000,
      maxInputsPerMission: 200,
      privateKeyPem: undefined,
      policyMode: 'log-only',
      compactMaxContext: 128_000,
      compactModel: undefined,
      goalsAppId: 'goals',
      toolCatalogPath: undefined,
      otelEndpoint: undefined,
      nodeEnv: undefined,
      authUrl: 'http://localhost:3001',
      authJwksUrl: undefined,
      jwtIssuer: undefined,
      jwtAudience: 'mana',
      devBypassAuth: false,
      devUserId: '00000000-0000-0000-0000-000000000000',
      corsOrigins: [],
      concurrency: 8,
      defaultTimeZone: 'Europe/Berlin',
      logLevel: 'info',
      shutdownTimeoutMs: 30_000,
      bootTimeoutMs: 30_000,
      llmModel: 'mana/reasoning',
      llmApiKey: undefined,
      llmAuthStyle: 'bearer',
      llmTimeoutMs: 120_000,
      llmMaxRetries: 2,
      maxRounds: 5,
      llmMaxResponseBytes: 1_048_576,
      maxToolCalls: 50,
      maxToolArgumentBytes: 16_384,
      maxSummaryChars: 4000,
      locale: 'de',
      apiAuth: 'service-key',
      apiJwtPrivateKeyPem: undefined,
      apiJwtAlgorithm: 'RS256',
      apiJwtKeyId: undefined,
      apiJwtIssuer: 'https://auth.mana.how',
      apiJwtTier: 'beta',
      leaseMs: 60_000,
      instanceId: undefined,
      maxMissionsPerTick: 10_000,
    });
  });

  it('parses every variable when all are set to valid values', () => {
    const config = parseConfig({
      PORT: '8080',
      HOST: '127.0.0.1',
      DATABASE_URL: 'postgres://u:p@db:5432/mana_sync',
      MANA_LLM_URL: 'https://llm.example/v1/',
      MANA_API_URL: 'http://api:3060',
      MANA_RESEARCH_URL: 'http://research:3068',
      MANA_AI_DEEP_RESEARCH_ENABLED: 'true',
      MANA_SERVICE_KEY: 'k',
      MANA_SERVICE_KEY_PREVIOUS: 'old-k',
      TICK_INTERVAL_MS: '5000',
      TICK_ENABLED: 'FALSE',
      MANA_AI_PRIVATE_KEY_PEM: PEM.replace(/\n/g, '\\n'),
      POLICY_MODE: 'Enforce',
      MANA_AI_COMPACT_MAX_CTX: '0',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://tempo:4318',
      NODE_ENV: 'development',
      MANA_AUTH_URL: 'http://auth:3001',
      JWT_ISSUER: 'https://auth.mana.how',
      JWT_AUDIENCE: 'aud',
      DEV_BYPASS_AUTH: 'true',
      DEV_USER_ID: 'u1',
      MANA_AI_CONCURRENCY: '32',
      MANA_AI_DEFAULT_TIMEZONE: 'America/New_York',
      LOG_LEVEL: 'DEBUG',
      MANA_AI_SHUTDOWN_TIMEOUT_MS: '0',
      MANA_AI_BOOT_TIMEOUT_MS: '5000',
      MANA_LLM_MODEL: 'gpt-test',
      MANA_LLM_API_KEY: 'llm-key',
      MANA_LLM_AUTH_STYLE: 'X-API-Key',
      MANA_LLM_TIMEOUT_MS: '5000',
      MANA_LLM_MAX_RETRIES: '0',
      MANA_AI_MAX_ROUNDS: '8',
      MANA_LLM_MAX_RESPONSE_BYTES: '2097152',
      MANA_AI_MAX_TOOL_CALLS: '20',
      MANA_AI_MAX_TOOL_ARGUMENT_BYTES: '4096',
      MANA_AI_MAX_SUMMARY_CHARS: '1000',
      MANA_AI_LOCALE: 'EN',
      MANA_API_AUTH: 'JWT',
      MANA_API_JWT_PRIVATE_KEY_PEM: PEM,
      MANA_API_JWT_ALGORITHM: 'ES256',
      MANA_API_JWT_KEY_ID: 'runner-1',
      MANA_API_JWT_ISSUER: 'http://auth:3001',
      MANA_API_JWT_TIER: 'pro',
      MANA_AI_COMPACT_MODEL: 'google/gemini-2.5-flash-lite',
      MANA_AI_GOALS_APP_ID: 'companion',
      MANA_AI_TOOL_CATALOG_PATH: '/etc/mana-ai/catalog.json',
      MANA_AI_LEASE_MS: '60000',
      MANA_AI_INSTANCE_ID: 'runner-a',
      MANA_AI_MAX_MISSIONS_PER_TICK: '50',
    });
    expect(config).toMatchObject({
      port: 8080,
      llmUrl: 'https://llm.example/v1',
      deepResearchEnabled: true,
      tickEnabled: false,
      privateKeyPem: PEM,
      policyMode: 'enforce',
      compactMaxContext: 0,
      concurrency: 32,
      defaultTimeZone: 'America/New_York',
      logLevel: 'debug',
      shutdownTimeoutMs: 0,
      bootTimeoutMs: 5000,
      previousServiceKey: 'old-k',
      llmModel: 'gpt-test',
      llmApiKey: 'llm-key',
      llmAuthStyle: 'x-api-key',
      llmTimeoutMs: 5000,
      llmMaxRetries: 0,
      maxRounds: 8,
      llmMaxResponseBytes: 2_097_152,
      maxToolCalls: 20,
      maxToolArgumentBytes: 4096,
      maxSummaryChars: 1000,
      locale: 'en',
      apiAuth: 'jwt',
      apiJwtPrivateKeyPem: PEM,
      apiJwtAlgorithm: 'ES256',
      apiJwtKeyId: 'runner-1',
      apiJwtIssuer: 'http://auth:3001',
      apiJwtTier: 'pro',
      compactModel: 'google/gemini-2.5-flash-lite',
      goalsAppId: 'companion',
      toolCatalogPath: '/etc/mana-ai/catalog.json',
      leaseMs: 60_000,
      instanceId: 'runner-a',
      maxMissionsPerTick: 50,
    });
  });

  it('derives the JWKS URL from MANA_AUTH_URL unless MANA_AUTH_JWKS_URL is set', () => {
    expect(jwksUrlOf(parseConfig({}))).toBe('http://localhost:3001/api/v1/auth/jwks');
    expect(jwksUrlOf(parseConfig({ MANA_AUTH_URL: 'https://auth.mana.how/' }))).toBe('https://auth.mana.how/api/v1/auth/jwks');
    const explicit = parseConfig({ MANA_AUTH_URL: 'https://auth.mana.how', MANA_AUTH_JWKS_URL: 'http://mana-auth:3001/api/v1/auth/jwks' });
    expect(jwksUrlOf(explicit)).toBe('http://mana-auth:3001/api/v1/auth/jwks');
    expect(configError({ MANA_AUTH_JWKS_URL: 'file:///etc/jwks' }).issues.map((issue) => issue.variable)).toEqual(['MANA_AUTH_JWKS_URL']);
  });

  it('splits MANA_AI_CORS_ORIGINS into origins and refuses anything that is not a bare origin', () => {
    expect(parseConfig({ MANA_AI_CORS_ORIGINS: ' https://mana.how, http://localhost:5173/ ,' }).corsOrigins).toEqual([
      'https://mana.how',
      'http://localhost:5173',
    ]);
    for (const bad of ['*', 'mana.how', 'https://mana.how/app', 'ftp://mana.how']) {
      expect(configError({ MANA_AI_CORS_ORIGINS: bad }).issues.map((issue) => issue.variable)).toEqual(['MANA_AI_CORS_ORIGINS']);
    }
  });

  it('reads SYNC_DATABASE_URL when DATABASE_URL is unset and prefers DATABASE_URL when both are set', () => {
    expect(parseConfig({ SYNC_DATABASE_URL: 'postgresql://a@h/x' }).databaseUrl).toBe('postgresql://a@h/x');
    expect(parseConfig({ SYNC_DATABASE_URL: 'postgresql://a@h/x', DATABASE_URL: 'postgres://b@h/y' }).databaseUrl).toBe('postgres://b@h/y');
  });

  it('treats an empty variable as unset', () => {
    const config = parseConfig({ PORT: '', MANA_AI_PRIVATE_KEY_PEM: '', DATABASE_URL: '' });
    expect(config.port).toBe(3067);
    expect(config.privateKeyPem).toBeUndefined();
    expect(config.databaseUrl).toBeUndefined();
  });

  it('names every bad variable in one error and echoes none of the values when several are bad', () => {
    const secrets = {
      DATABASE_URL: 'mysql://root:hunter2-db-secret@db/x',
      MANA_AI_PRIVATE_KEY_PEM: 'not-a-pem-but-a-secret-s3cr3t',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://otel-secret-host',
    };
    const error = configError({
      ...secrets,
      PORT: '70000',
      TICK_INTERVAL_MS: '1e3',
      TICK_ENABLED: 'maybe',
      POLICY_MODE: 'strict',
      MANA_AI_CONCURRENCY: '0',
      MANA_AI_DEFAULT_TIMEZONE: 'Mars/Olympus',
      LOG_LEVEL: 'loud',
      MANA_LLM_URL: 'not a url',
    });
    expect(error.code).toBe('RUNNER_CONFIG_INVALID');
    expect(error.issues.map((issue) => issue.variable)).toEqual([
      'PORT',
      'DATABASE_URL',
      'MANA_LLM_URL',
      'TICK_INTERVAL_MS',
      'TICK_ENABLED',
      'MANA_AI_PRIVATE_KEY_PEM',
      'POLICY_MODE',
      'OTEL_EXPORTER_OTLP_ENDPOINT',
      'MANA_AI_CONCURRENCY',
      'MANA_AI_DEFAULT_TIMEZONE',
      'LOG_LEVEL',
    ]);
    for (const issue of error.issues) expect(error.message).toContain(issue.variable);
    const rendered = `${error.message} ${JSON.stringify(error.details)} ${JSON.stringify(error.issues)}`;
    for (const value of [...Object.values(secrets), 'hunter2', 's3cr3t', '70000', 'Mars/Olympus', 'strict', 'loud']) {
      expect(rendered).not.toContain(value);
    }
  });

  it('refuses the default service key when NODE_ENV is production', () => {
    const error = configError({ NODE_ENV: 'production' });
    expect(error.issues).toEqual([{ variable: 'MANA_SERVICE_KEY', expected: 'a non-default value when NODE_ENV=production' }]);
    expect(configError({ NODE_ENV: 'production', MANA_SERVICE_KEY: DEFAULT_SERVICE_KEY }).issues[0]?.variable).toBe('MANA_SERVICE_KEY');
    expect(parseConfig({ NODE_ENV: 'production', MANA_SERVICE_KEY: 'a-real-key' }).serviceKey).toBe('a-real-key');
    expect(parseConfig({ NODE_ENV: 'development' }).serviceKey).toBe(DEFAULT_SERVICE_KEY);
  });

  it('requires the signing key when MANA_API_AUTH is jwt', () => {
    expect(configError({ MANA_API_AUTH: 'jwt' }).issues).toEqual([{ variable: 'MANA_API_JWT_PRIVATE_KEY_PEM', expected: 'a PKCS#8 PEM when MANA_API_AUTH=jwt' }]);
    expect(parseConfig({ MANA_API_AUTH: 'none' }).apiAuth).toBe('none');
  });

  it('returns a frozen object when parsing succeeds', () => {
    expect(Object.isFrozen(parseConfig({}))).toBe(true);
  });
});

describe('CONFIG_VARIABLES', () => {
  it('lists every variable once with a description and marks the credentials secret', () => {
    const names = CONFIG_VARIABLES.map((variable) => variable.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(
      expect.arrayContaining(['PORT', 'DATABASE_URL', 'MANA_SERVICE_KEY', 'POLICY_MODE', 'LOG_LEVEL', 'MANA_AI_CONCURRENCY', 'MANA_AI_DEFAULT_TIMEZONE']),
    );
    for (const variable of CONFIG_VARIABLES) expect(variable.description.length).toBeGreaterThan(5);
    const secret = CONFIG_VARIABLES.filter((variable) => variable.secret).map((variable) => variable.name);
    expect(secret).toEqual(['DATABASE_URL', 'MANA_SERVICE_KEY', 'MANA_SERVICE_KEY_PREVIOUS', 'MANA_AI_PRIVATE_KEY_PEM', 'MANA_LLM_API_KEY', 'MANA_API_JWT_PRIVATE_KEY_PEM']);
    expect(CONFIG_VARIABLES.find((variable) => variable.name === 'DATABASE_URL')?.aliases).toEqual(['SYNC_DATABASE_URL']);
  });
});

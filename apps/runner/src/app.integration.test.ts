import { type Server, createServer } from 'node:net';
import { ManaAiError, type ManaAiEvents, type TickStats, createEventBus, createManualClock, noopLogger } from '@mana-ai/core';
import { type TestDatabase, createTestDatabase } from '@mana-ai/test-postgres';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import postgres, { type Sql } from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AppConfig, type AppDeps, buildApp } from './app.js';
import { openDatabase, poolOptions } from './database.js';
import { freePort } from './embedded-postgres.js';
import { createPassDispatcher, emptyTickStats } from './host-dispatcher.js';
import { RUNNER_VERSION } from './version.js';

const SERVICE_KEY = 'test-service-key-0123456789';
const clock = createManualClock('2025-10-26T01:30:00.000Z');
const config: AppConfig = { serviceKey: SERVICE_KEY, tickIntervalMs: 60_000, tickEnabled: false, shutdownTimeoutMs: 1000 };

let db: TestDatabase;
const apps: FastifyInstance[] = [];

type Pass = Parameters<typeof createPassDispatcher>[0];

/** The app with a stand-in dispatcher whose passes run `tick` (the host tested without the pipeline). */
function app(overrides: Partial<AppDeps> & { tick?: Pass } = {}, configOverrides: Partial<AppConfig> = {}): FastifyInstance {
  const { tick = async () => emptyTickStats(clock), ...deps } = overrides;
  const events = createEventBus<ManaAiEvents>();
  const dispatcher = createPassDispatcher(tick, clock, events);
  const instance = buildApp(
    { sql: db.sql, logger: pino({ level: 'silent' }), clock, events, dispatcher, ...deps },
    { ...config, ...configOverrides },
  );
  apps.push(instance);
  return instance;
}

beforeAll(async () => {
  db = await createTestDatabase();
});
afterEach(async () => {
  await Promise.all(apps.splice(0).map((instance) => instance.close()));
});
afterAll(() => db.drop());

describe('GET /health', () => {
  it('answers 200 with service, version, tick state and database ok when the database is up', async () => {
    const response = await app().inject({ method: 'GET', url: '/health' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({
      ok: true,
      service: 'mana-ai',
      version: RUNNER_VERSION,
      tick: { enabled: false, running: false },
      database: { ok: true },
    });
    expect(RUNNER_VERSION).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('reports the tick as enabled and running when the dispatcher is on', async () => {
    const instance = app({}, { tickEnabled: true });
    const response = await instance.inject({ method: 'GET', url: '/health' });
    expect(response.json().tick).toEqual({ enabled: true, running: true });
  });

  it('answers 200 on its own connection when every pooled connection is busy', async () => {
    const database = await openDatabase({ databaseUrl: db.url, concurrency: 1 }, noopLogger);
    try {
      const pooled = poolOptions({ concurrency: 1 }).max ?? 0;
      let sleepsDone = false;
      // Longer than the health bound: a check queued behind them would time out.
      const sleeps = Promise.all(Array.from({ length: pooled }, () => database.sql`SELECT pg_sleep(3)`)).then(() => {
        sleepsDone = true;
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      const instance = app({ sql: database.sql, healthSql: database.healthSql }, { healthDatabaseTimeoutMs: 1000 });
      const response = await instance.inject({ method: 'GET', url: '/health' });
      expect(response.statusCode).toBe(200);
      expect(sleepsDone).toBe(false);
      await sleeps;
    } finally {
      await database.close();
    }
  });

  it('answers 503 with ok false when the database refuses connections', async () => {
    const port = await freePort();
    const dead: Sql = postgres(`postgres://nobody:nothing@127.0.0.1:${port}/none`, { max: 1, connect_timeout: 2 });
    try {
      const response = await app({ sql: dead }).inject({ method: 'GET', url: '/health' });
      expect(response.statusCode).toBe(503);
      expect(response.json()).toMatchObject({ ok: false, service: 'mana-ai', database: { ok: false, error: 'unavailable' } });
      expect(response.body).not.toContain(String(port));
    } finally {
      await dead.end({ timeout: 1 });
    }
  });

  it('answers 503 within the bound when the database never answers', async () => {
    // A TCP peer that accepts and stays silent: the startup handshake never completes.
    const sockets = new Set<import('node:net').Socket>();
    const silent: Server = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = silent.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const hung: Sql = postgres(`postgres://nobody:nothing@127.0.0.1:${port}/none`, { max: 1, connect_timeout: 30 });
    try {
      const started = performance.now();
      const response = await app({ sql: hung }, { healthDatabaseTimeoutMs: 200 }).inject({ method: 'GET', url: '/health' });
      expect(response.statusCode).toBe(503);
      expect(response.json().database).toEqual({ ok: false, error: 'timeout' });
      expect(performance.now() - started).toBeLessThan(2000);
    } finally {
      for (const socket of sockets) socket.destroy();
      await hung.end({ timeout: 0 });
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe('GET /metrics', () => {
  it('exposes the labelled counters with a closed set of values at 0 before anything happened', async () => {
    const body = (await app().inject({ method: 'GET', url: '/metrics' })).body;
    for (const sample of [
      'mana_ai_agent_decisions_total{decision="skipped-budget",service="mana-ai"} 0',
      'mana_ai_agent_decisions_total{decision="ran",service="mana-ai"} 0',
      'mana_ai_missions_skipped_total{reason="ciphertext-mission",service="mana-ai"} 0',
      'mana_ai_grant_skips_total{reason="not-configured",service="mana-ai"} 0',
      'mana_ai_grant_skips_total{reason="unwrap-error",service="mana-ai"} 0',
      'mana_ai_tick_errors_total{stage="claim",service="mana-ai"} 0',
      'mana_ai_lease_renewals_total{outcome="lost",service="mana-ai"} 0',
      'mana_ai_grant_scope_violations_total{table="other",service="mana-ai"} 0',
      'mana_ai_grant_scope_violations_total{table="notes",service="mana-ai"} 0',
      'mana_ai_provider_errors_total{provider="mana",kind="too-large",service="mana-ai"} 0',
      'mana_ai_provider_errors_total{provider="mana",kind="unreachable",service="mana-ai"} 0',
      'mana_ai_research_jobs_submitted_total{provider="gemini-deep-research-max",service="mana-ai"} 0',
      'mana_ai_research_jobs_completed_total{provider="openai-deep-research",service="mana-ai"} 0',
      'mana_ai_research_jobs_failed_total{provider="other",service="mana-ai"} 0',
    ]) {
      expect(body.split('\n'), sample).toContain(sample);
    }
  });

  it('serves a parseable exposition with the mana_ai_ prefix and service label that counts requests', async () => {
    const instance = app();
    await instance.inject({ method: 'GET', url: '/health' });
    await instance.inject({ method: 'GET', url: '/health' });
    await instance.inject({ method: 'GET', url: '/nowhere/42' });
    const response = await instance.inject({ method: 'GET', url: '/metrics' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toBe(instance.metrics.registry.contentType);
    expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);

    const samples = response.body
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#'))
      .map((line) => {
        const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
        if (!match) throw new Error(`unparseable sample line: ${line}`);
        const raw = match[3] ?? '';
        return { name: match[1] ?? '', labels: match[2] ?? '', raw, value: Number(raw) };
      });
    expect(samples.length).toBeGreaterThan(20);
    for (const sample of samples) {
      expect(sample.name.startsWith('mana_ai_')).toBe(true);
      expect(sample.labels).toContain('service="mana-ai"');
      // Prometheus parses floats like Go's ParseFloat: Inf and NaN in any case (prom-client writes `Nan`).
      expect(Number.isFinite(sample.value) || /^([+-]?inf|nan)$/i.test(sample.raw)).toBe(true);
    }
    for (const line of response.body.split('\n').filter((l) => l.startsWith('# TYPE') || l.startsWith('# HELP'))) {
      expect(line.split(' ')[2]?.startsWith('mana_ai_')).toBe(true);
    }
    const names = new Set(samples.map((sample) => sample.name));
    for (const name of ['mana_ai_process_cpu_user_seconds_total', 'mana_ai_ticks_total', 'mana_ai_tick_duration_seconds_count']) {
      expect(names.has(name)).toBe(true);
    }
    const healthCount = samples.find(
      (s) => s.name === 'mana_ai_http_requests_total' && s.labels.includes('path="/health"') && s.labels.includes('status="200"'),
    );
    expect(healthCount?.value).toBe(2);
    const unmatched = samples.find((s) => s.name === 'mana_ai_http_requests_total' && s.labels.includes('status="404"'));
    expect(unmatched?.labels).toContain('path="unmatched"');
    expect(response.body).not.toContain('/nowhere/42');
    const buckets = samples
      .filter((s) => s.name === 'mana_ai_http_request_duration_seconds_bucket' && s.labels.includes('path="/health"'))
      .map((s) => /le="([^"]+)"/.exec(s.labels)?.[1]);
    expect(buckets).toEqual(['0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf']);
  });

  it('keeps one registry per app when two apps run side by side', async () => {
    const first = app();
    const second = app();
    await first.inject({ method: 'GET', url: '/health' });
    const body = (await second.inject({ method: 'GET', url: '/metrics' })).body;
    expect(body).not.toContain('path="/health"');
    expect(first.metrics.registry).not.toBe(second.metrics.registry);
  });
});

describe('POST /internal/tick', () => {
  const stats: TickStats = { ...emptyTickStats(clock), dueMissionCount: 2, plansProduced: 1 };

  it('answers 401 with the upstream body when the key is missing, wrong or of another length', async () => {
    let calls = 0;
    const instance = app({
      tick: async () => {
        calls += 1;
        return stats;
      },
    });
    for (const headers of [
      {},
      { 'x-service-key': '' },
      { 'x-service-key': 'test-service-key-0123456788' },
      { 'x-service-key': 'test' },
      { 'x-service-key': `${SERVICE_KEY}x` },
      { 'x-service-key': SERVICE_KEY.toUpperCase() },
    ]) {
      const response = await instance.inject({ method: 'POST', url: '/internal/tick', headers });
      expect(response.statusCode).toBe(401);
      expect(response.headers['content-type']).toMatch(/^application\/json/);
      expect(response.json()).toEqual({ error: 'invalid or missing service key' });
    }
    expect(calls).toBe(0);
  });

  it('accepts the current and the previous key, and no other, while MANA_SERVICE_KEY_PREVIOUS is set', async () => {
    const previous = 'previous-service-key-9876543210';
    const instance = app({ tick: async () => stats }, { previousServiceKey: previous });
    for (const key of [SERVICE_KEY, previous]) {
      const response = await instance.inject({ method: 'POST', url: '/internal/tick', headers: { 'x-service-key': key } });
      expect(response.statusCode, key).toBe(200);
    }
    for (const key of ['', 'unrelated-key', `${previous}x`, previous.toUpperCase()]) {
      const response = await instance.inject({ method: 'POST', url: '/internal/tick', headers: { 'x-service-key': key } });
      expect(response.statusCode, key).toBe(401);
    }
    // Without it the previous key is refused.
    const after = await app({ tick: async () => stats }).inject({ method: 'POST', url: '/internal/tick', headers: { 'x-service-key': previous } });
    expect(after.statusCode).toBe(401);
  });

  it('runs one tick and returns its TickStats when the key is right', async () => {
    let calls = 0;
    const instance = app({
      tick: async () => {
        calls += 1;
        return stats;
      },
    });
    const response = await instance.inject({ method: 'POST', url: '/internal/tick', headers: { 'x-service-key': SERVICE_KEY } });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual(stats);
    const withJsonBody = await instance.inject({
      method: 'POST',
      url: '/internal/tick',
      headers: { 'x-service-key': SERVICE_KEY, 'content-type': 'application/json' },
    });
    expect(withJsonBody.statusCode).toBe(200);
    expect(calls).toBe(2);
    const metrics = (await instance.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^mana_ai_ticks_total\{service="mana-ai"\} 2$/m);
    expect(metrics).toMatch(/^mana_ai_tick_duration_seconds_count\{service="mana-ai"\} 2$/m);
  });

  it('returns overlap-skipped without a second run when a tick is already in flight', async () => {
    let release!: () => void;
    let calls = 0;
    const instance = app({
      tick: () => {
        calls += 1;
        return new Promise((resolve) => {
          release = () => resolve(stats);
        });
      },
    });
    const headers = { 'x-service-key': SERVICE_KEY };
    const first = instance.inject({ method: 'POST', url: '/internal/tick', headers });
    await new Promise((resolve) => setTimeout(resolve, 50));
    const second = await instance.inject({ method: 'POST', url: '/internal/tick', headers });
    expect(second.json().errors).toEqual(['overlap-skipped']);
    release();
    expect((await first).json()).toEqual(stats);
    expect(calls).toBe(1);
  });

  it('maps a failing tick to a 500 JSON body that hides the cause', async () => {
    const instance = app({
      tick: async () => {
        throw new Error('connection to 10.0.0.7 failed: password authentication failed for user "mana"');
      },
    });
    const response = await instance.inject({ method: 'POST', url: '/internal/tick', headers: { 'x-service-key': SERVICE_KEY } });
    expect(response.statusCode).toBe(500);
    expect(response.json()).toEqual({ error: 'internal error', code: 'RUNNER_INTERNAL' });
  });
});

describe('the /internal prefix', () => {
  it('answers 401 without a key and 404 with one when the internal path is unknown', async () => {
    const instance = app();
    for (const url of ['/internal/missions/u1', '/internal/unknown/u1', '/internal', '/%69nternal/tick', '//internal/tick', '/INTERNAL/x?y=1']) {
      expect((await instance.inject({ method: 'GET', url })).statusCode).toBe(401);
    }
    const known = await instance.inject({ method: 'GET', url: '/internal/unknown/u1', headers: { 'x-service-key': SERVICE_KEY } });
    expect(known.statusCode).toBe(404);
    expect(known.json()).toEqual({ error: 'not found', code: 'RUNNER_NOT_FOUND' });
    expect((await instance.inject({ method: 'GET', url: '/internal/tick', headers: { 'x-service-key': SERVICE_KEY } })).statusCode).toBe(404);
  });

  it('leaves public routes open when no key is sent', async () => {
    const instance = app();
    expect((await instance.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(200);
    expect((await instance.inject({ method: 'GET', url: '/nope' })).statusCode).toBe(404);
  });
});

describe('the error handler', () => {
  it('maps mana-ai error codes to 4xx or 500 and never leaks a 5xx message', async () => {
    const instance = app();
    const cases: [string, number][] = [
      ['CORE_INVALID_CADENCE', 400],
      ['PLANNER_VALIDATION_FAILED', 400],
      ['RESOLVERS_SCOPE_VIOLATION', 403],
      ['PROJECTION_NOT_FOUND', 404],
      ['CRYPTO_DECRYPT_FAILED', 500],
    ];
    instance.get('/boom/:code', async (request) => {
      throw new ManaAiError((request.params as { code: string }).code, 'detail that must stay inside for 5xx');
    });
    for (const [code, status] of cases) {
      const response = await instance.inject({ method: 'GET', url: `/boom/${code}` });
      expect(response.statusCode).toBe(status);
      expect(response.json().code).toBe(code);
      if (status >= 500) expect(response.json()).toEqual({ error: 'internal error', code });
      else expect(response.json().error).toBe('detail that must stay inside for 5xx');
    }
  });
});

describe('closing the app', () => {
  it('waits for the pass in flight before it resolves', async () => {
    let finished = false;
    const instance = app(
      {
        tick: () =>
          new Promise((resolve) =>
            setTimeout(() => {
              finished = true;
              resolve(emptyTickStats(clock));
            }, 200),
          ),
      },
      { tickEnabled: true, shutdownTimeoutMs: 5000 },
    );
    await instance.ready();
    expect(instance.dispatcher.running).toBe(true);
    void instance.dispatcher.dispatcher.runPass();
    expect(instance.dispatcher.dispatcher.passing).toBe(true);
    await instance.close();
    expect(finished).toBe(true);
    expect(instance.dispatcher.running).toBe(false);
  });
});

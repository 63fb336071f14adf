import { type TickStats, createManualClock } from '@mana-ai/core';
import { type FakeLlmServer, createFakeLlmServer } from '@mana-ai/planner/testing';
import { type TestDatabase, clearProjection, createTestDatabase } from '@mana-ai/test-postgres';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { Sql } from 'postgres';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { type AppConfig, buildApp } from '../src/app.js';
import { type MissionSeed, type WebappClient, createWebappClient, writeMission } from '../src/demo/seed.js';

/** The instance's (manual) clock of every app the harness builds. */
export const HARNESS_NOW = '2026-04-21T07:00:00.000Z';

/** The in-process runner of a suite: a test database, a fake LLM and the apps built over them. */
export interface InProcessApps {
  readonly db: TestDatabase;
  readonly llm: FakeLlmServer;
  /** The app, ready, on the database's superuser with a silent logger, the clock at {@link HARNESS_NOW} and `config` over the suite's. */
  app(config?: Partial<AppConfig>): Promise<FastifyInstance>;
  /** A webapp device of `userId` writing to the log (its clock a day before the runner's). */
  webapp(userId: string): WebappClient;
  /** Writes mission `id` of `userId`: hourly, due an hour before {@link HARNESS_NOW}, `overrides` on top. */
  insertMission(userId: string, id: string, overrides?: Partial<MissionSeed>): Promise<void>;
  /** POST /internal/tick with the service key; expects 200 and returns the pass's stats. */
  tick(instance: FastifyInstance): Promise<TickStats>;
}

/**
 * Registers the suite hooks of an in-process runner: the database and fake LLM start before the
 * suite and stop after it; after each test the apps built are closed, the fake LLM is reset and
 * the log and the runner's tables are emptied.
 */
export function useInProcessApps(options: { serviceKey: string; instanceId: string; config?: () => Partial<AppConfig> }): InProcessApps {
  const apps: FastifyInstance[] = [];
  let db: TestDatabase;
  let llm: FakeLlmServer;
  beforeAll(async () => {
    db = await createTestDatabase();
    llm = await createFakeLlmServer();
  });
  afterAll(async () => {
    await llm?.close();
    await db?.drop();
  });
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
    llm.reset();
    await clearProjection(db.sql);
  });
  const webapp = (userId: string): WebappClient =>
    createWebappClient(db.sql as unknown as Sql, { userId, clock: createManualClock('2026-04-20T08:00:00.000Z') });
  return {
    get db() {
      return db;
    },
    get llm() {
      return llm;
    },
    async app(config = {}) {
      const instance = buildApp(
        { sql: db.sql as unknown as Sql, logger: pino({ level: 'silent' }), clock: createManualClock(HARNESS_NOW) },
        {
          serviceKey: options.serviceKey,
          tickIntervalMs: 60_000,
          tickEnabled: false,
          shutdownTimeoutMs: 5_000,
          llmUrl: llm.url,
          llmMaxRetries: 0,
          instanceId: options.instanceId,
          apiAuth: 'none',
          ...options.config?.(),
          ...config,
        },
      );
      apps.push(instance);
      await instance.ready();
      return instance;
    },
    webapp,
    async insertMission(userId, id, overrides = {}) {
      await writeMission(webapp(userId), {
        id,
        title: `Mission ${id}`,
        objective: `Objective of ${id}`,
        cadence: { kind: 'interval', everyMinutes: 60 },
        nextRunAt: '2026-04-21T06:00:00.000Z',
        ...overrides,
      });
    },
    async tick(instance) {
      const response = await instance.inject({ method: 'POST', url: '/internal/tick', headers: { 'x-service-key': options.serviceKey } });
      expect(response.statusCode).toBe(200);
      return response.json() as TickStats;
    },
  };
}

import type { Clock, TickStats } from '@mana-ai/core';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from '@mana-ai/planner/testing';
import type { Sql } from 'postgres';
import { expect } from 'vitest';
import { type AppConfig, type AppDeps, buildApp } from '../../../apps/runner/src/app.js';
import { createLogger } from '../../../apps/runner/src/logger.js';
import { type TestDatabase, connectAsRunner } from './security-database.js';

/** The whole runner app in this process, for suites that drive passes through `POST /internal/tick`. */
export interface InProcessRunner {
  readonly app: ReturnType<typeof buildApp>;
  /** The fake LLM: every request is answered "Nichts zu tun." unless scripted otherwise. */
  readonly llm: FakeLlmServer;
  /** One pass with the service key; expects 200 and returns its stats. */
  tick(): Promise<TickStats>;
  /** Closes the app, the fake LLM and the runner's connections (not the database). */
  close(): Promise<void>;
}

/**
 * Builds and readies the runner app over `db` as the least-privileged runner role, with a fake LLM
 * and no research service (its URLs refuse connections); `config` goes over those settings.
 */
export async function startInProcessRunner(
  db: TestDatabase,
  options: { serviceKey: string; instanceId: string; clock: Clock; logger?: AppDeps['logger']; config?: Partial<AppConfig> },
): Promise<InProcessRunner> {
  const runner: Sql = await connectAsRunner(db);
  const llm = await createFakeLlmServer({ defaultReply: fakeReplies.text('Nichts zu tun.') });
  const app = buildApp(
    { sql: runner, logger: options.logger ?? createLogger({ level: 'silent' }), clock: options.clock },
    {
      serviceKey: options.serviceKey,
      tickIntervalMs: 60_000,
      tickEnabled: false,
      shutdownTimeoutMs: 5000,
      llmUrl: llm.url,
      llmMaxRetries: 0,
      apiUrl: 'http://127.0.0.1:1',
      researchUrl: 'http://127.0.0.1:1',
      instanceId: options.instanceId,
      ...options.config,
    },
  );
  await app.ready();
  return {
    app,
    llm,
    async tick() {
      const response = await app.inject({ method: 'POST', url: '/internal/tick', headers: { 'x-service-key': options.serviceKey } });
      expect(response.statusCode).toBe(200);
      return response.json() as TickStats;
    },
    async close() {
      await app.close();
      await llm.close();
      await runner.end();
    },
  };
}

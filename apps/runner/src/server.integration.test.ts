import { type TestDatabase, createTestDatabase } from '@mana-ai/test-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type DelayProxy,
  type RunnerProcess,
  assertWorkspaceBuilt,
  spawnRunner,
  startDelayProxy,
  waitForHealthy,
} from '../test/spawn-runner.js';
import { freePort } from './embedded-postgres.js';

const SERVICE_KEY = 'process-test-key';

describe('mana-ai start (a real process)', () => {
  let db: TestDatabase;
  let proxy: DelayProxy;
  const runners: RunnerProcess[] = [];

  beforeAll(async () => {
    assertWorkspaceBuilt();
    db = await createTestDatabase();
    const target = new URL(db.url);
    proxy = await startDelayProxy(target.hostname, Number(target.port));
  });
  afterAll(async () => {
    for (const runner of runners) runner.kill();
    await proxy?.close();
    await db?.drop();
  });

  async function start(extra: Record<string, string> = {}): Promise<{ runner: RunnerProcess; base: string }> {
    const url = new URL(db.url);
    url.port = String(proxy.port);
    const port = await freePort();
    const runner = spawnRunner(['start'], {
      DATABASE_URL: url.toString(),
      PORT: String(port),
      HOST: '127.0.0.1',
      MANA_SERVICE_KEY: SERVICE_KEY,
      TICK_ENABLED: 'false',
      ...extra,
    });
    runners.push(runner);
    const base = `http://127.0.0.1:${port}`;
    await waitForHealthy(`${base}/health`, runner);
    return { runner, base };
  }

  it('lets an in-flight tick answer, then exits 0 and stops listening when sent SIGTERM', async () => {
    const { runner, base } = await start({ MANA_AI_SHUTDOWN_TIMEOUT_MS: '15000' });
    // Every message to the database waits: the tick's dozen round trips then take seconds.
    proxy.delayMs = 200;
    try {
      const tick = fetch(`${base}/internal/tick`, { method: 'POST', headers: { 'x-service-key': SERVICE_KEY } }).then(async (response) => ({
        status: response.status,
        body: await response.json(),
        at: performance.now(),
      }));
      await new Promise((resolve) => setTimeout(resolve, 400));
      runner.child.kill('SIGTERM');
      const [answer, exit] = await Promise.all([tick, runner.exited]);
      expect(answer.status).toBe(200);
      expect(answer.body).toMatchObject({ dueMissionCount: 0, errors: [] });
      expect(exit).toMatchObject({ code: 0, signal: null });
      expect(exit.at).toBeGreaterThanOrEqual(answer.at);
      expect(runner.stdout()).toContain('waiting for the in-flight pass and mission runs');
      expect(runner.stdout()).not.toContain('abandoned');
      await expect(fetch(`${base}/health`, { signal: AbortSignal.timeout(1000) })).rejects.toThrow();
    } finally {
      proxy.delayMs = 0;
    }
  }, 60_000);

  it('finishes booting, then stops and exits 0 when sent SIGTERM during boot', async () => {
    const url = new URL(db.url);
    url.port = String(proxy.port);
    const port = await freePort();
    proxy.delayMs = 300;
    try {
      const runner = spawnRunner(['start'], { DATABASE_URL: url.toString(), PORT: String(port), HOST: '127.0.0.1', TICK_ENABLED: 'false' });
      runners.push(runner);
      const deadline = performance.now() + 30_000;
      while (!runner.stdout().includes('"msg":"starting"') && performance.now() < deadline && runner.child.exitCode === null) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      runner.child.kill('SIGTERM');
      const exit = await runner.exited;
      expect(exit).toMatchObject({ code: 0, signal: null });
      const out = runner.stdout();
      expect(out).toContain('signal received while booting');
      expect(out.indexOf('"msg":"listening"')).toBeGreaterThan(out.indexOf('signal received while booting'));
      expect(out).toMatch(/"msg":"stopped"/);
    } finally {
      proxy.delayMs = 0;
    }
  }, 60_000);

  it('exits 0 promptly when sent SIGINT while idle', async () => {
    const { runner, base } = await start();
    const sentAt = performance.now();
    runner.child.kill('SIGINT');
    const exit = await runner.exited;
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.at - sentAt).toBeLessThan(10_000);
    expect(runner.stdout()).toMatch(/"msg":"listening"/);
    expect(runner.stdout()).toMatch(/"msg":"stopped"/);
    await expect(fetch(`${base}/health`, { signal: AbortSignal.timeout(1000) })).rejects.toThrow();
  }, 60_000);
});

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
import { randomUUID } from 'node:crypto';
import { type AddressInfo, type Server, connect, createServer } from 'node:net';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from '@mana-ai/planner/testing';
import { createWebappClient, writeAgent, writeMission } from './demo/seed.js';
import { freePort } from './embedded-postgres.js';

const SERVICE_KEY = 'process-test-key';

/** Waits until the runner has written `text` on stdout (or exited). */
async function waitForOutput(runner: RunnerProcess, text: string, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!runner.stdout().includes(text) && performance.now() < deadline && runner.child.exitCode === null) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (!runner.stdout().includes(text)) throw new Error(`runner did not log ${text}:\n${runner.stderr()}\n${runner.stdout()}`);
}

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

  it('stops booting without listening and exits 0 when sent SIGTERM during boot', async () => {
    const url = new URL(db.url);
    url.port = String(proxy.port);
    const port = await freePort();
    proxy.delayMs = 300;
    try {
      const runner = spawnRunner(['start'], { DATABASE_URL: url.toString(), PORT: String(port), HOST: '127.0.0.1', TICK_ENABLED: 'false' });
      runners.push(runner);
      await waitForOutput(runner, '"msg":"starting"');
      runner.child.kill('SIGTERM');
      const exit = await runner.exited;
      expect(exit).toMatchObject({ code: 0, signal: null });
      const out = runner.stdout();
      expect(out).toContain('signal received while booting');
      expect(out).not.toContain('"msg":"listening"');
      expect(out).toMatch(/"msg":"stopped"/);
    } finally {
      proxy.delayMs = 0;
    }
  }, 60_000);

  it('answers GET /health/live while /health reports the database down', async () => {
    const { runner, base } = await start();
    // Every message to the database now waits longer than /health's 1 s bound.
    proxy.delayMs = 3000;
    try {
      const ready = await fetch(`${base}/health`);
      expect(ready.status).toBe(503);
      const live = await fetch(`${base}/health/live`);
      expect(live.status).toBe(200);
      expect(await live.json()).toEqual({ ok: true, service: 'mana-ai', version: expect.any(String) });
    } finally {
      proxy.delayMs = 0;
      runner.child.kill('SIGTERM');
      await runner.exited;
    }
  }, 60_000);

  it('closes a connection that sent half a request and exits 0 instead of waiting for the hard limit', async () => {
    // MANA_AI_SHUTDOWN_TIMEOUT_MS=0: the hard limit is 20 s, far below Node's 60 s headers timeout.
    const { runner, base } = await start({ MANA_AI_SHUTDOWN_TIMEOUT_MS: '0' });
    const { port } = new URL(base);
    const socket = connect(Number(port), '127.0.0.1');
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ');
    // The server has read the half request once a full request on another connection is answered.
    expect((await fetch(`${base}/health/live`)).status).toBe(200);
    runner.child.kill('SIGTERM');
    const exit = await runner.exited;
    await closed;
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(runner.stdout()).not.toContain('shutdown took too long');
    // start() sets no MANA_LLM_API_KEY: the service key would be sent to the LLM.
    expect(runner.stdout()).toContain('MANA_LLM_API_KEY is unset or equals MANA_SERVICE_KEY');
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

describe('mana-ai start against a database endpoint that accepts and closes every connection', () => {
  let endpoint: Server;
  let connections = 0;
  const runners: RunnerProcess[] = [];

  beforeAll(async () => {
    assertWorkspaceBuilt();
    // What a TCP proxy whose backend is down does: accept, then close before any byte.
    endpoint = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    for (const runner of runners) runner.kill();
    await new Promise((resolve) => endpoint?.close(resolve));
  });

  const spawn = async (env: Record<string, string>) => {
    const address = endpoint.address() as AddressInfo;
    const runner = spawnRunner(['start'], {
      DATABASE_URL: `postgresql://mana:boot-secret@127.0.0.1:${address.port}/mana_sync`,
      HOST: '127.0.0.1',
      PORT: String(await freePort()),
      TICK_ENABLED: 'false',
      ...env,
    });
    runners.push(runner);
    return runner;
  };

  it('gives up after MANA_AI_BOOT_TIMEOUT_MS with RUNNER_DATABASE_UNAVAILABLE, backing off between attempts', async () => {
    connections = 0;
    const runner = await spawn({ MANA_AI_BOOT_TIMEOUT_MS: '3000' });
    const exit = await runner.exited;
    expect(exit.code).toBe(1);
    expect(runner.stderr()).toContain('failed (RUNNER_DATABASE_UNAVAILABLE): the database did not answer within 3 s');
    expect(runner.stderr()).toContain('MANA_AI_BOOT_TIMEOUT_MS');
    expect(`${runner.stderr()}${runner.stdout()}`).not.toContain('boot-secret');
    // Backoff (50 ms doubling to 2 s) allows a handful of attempts in 3 s; the hot loop made thousands.
    expect(connections).toBeGreaterThan(0);
    expect(connections).toBeLessThan(50);
  }, 60_000);

  it('stops waiting and exits 0 when sent SIGTERM during the wait', async () => {
    const runner = await spawn({ MANA_AI_BOOT_TIMEOUT_MS: '600000' });
    await waitForOutput(runner, '"msg":"starting"');
    runner.child.kill('SIGTERM');
    const exit = await runner.exited;
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(runner.stdout()).toContain('signal received while booting');
    expect(runner.stdout()).toMatch(/"msg":"stopped"/);
  }, 60_000);
});

describe('mana-ai start with a mission whose LLM call never answers', () => {
  let db: TestDatabase;
  let llm: FakeLlmServer;
  const runners: RunnerProcess[] = [];

  beforeAll(async () => {
    assertWorkspaceBuilt();
    [db, llm] = await Promise.all([createTestDatabase(), createFakeLlmServer()]);
    llm.script({ reply: fakeReplies.hang() });
  });
  afterAll(async () => {
    for (const runner of runners) runner.kill();
    await llm?.close();
    await db?.drop();
  });

  /** Seeds one due mission, starts a dispatching runner and waits until its LLM call is open. */
  async function startPlanning(env: Record<string, string>): Promise<RunnerProcess> {
    const webapp = createWebappClient(db.sql, { userId: `u-shutdown-${randomUUID()}` });
    const agentId = await writeAgent(webapp, { name: 'Planer' });
    await writeMission(webapp, { title: 'Wochenplan', objective: 'Plane die Woche', cadence: { kind: 'interval', everyMinutes: 60 }, nextRunAt: new Date(Date.now() - 60_000).toISOString(), agentId });
    const requests = llm.requests.length;
    const port = await freePort();
    const runner = spawnRunner(['start'], {
      DATABASE_URL: db.url,
      PORT: String(port),
      HOST: '127.0.0.1',
      MANA_SERVICE_KEY: SERVICE_KEY,
      MANA_LLM_URL: llm.url,
      MANA_LLM_API_KEY: 'llm-key-of-its-own',
      ...env,
    });
    runners.push(runner);
    await waitForHealthy(`http://127.0.0.1:${port}/health`, runner);
    await llm.waitForRequests(requests + 1, 30_000);
    return runner;
  }

  it('waits MANA_AI_SHUTDOWN_TIMEOUT_MS beyond Fastify\'s 10 s plugin timeout, aborts the run and exits 0 on SIGTERM', async () => {
    const runner = await startPlanning({ MANA_AI_SHUTDOWN_TIMEOUT_MS: '11000' });
    runner.child.kill('SIGTERM');
    const exit = await runner.exited;
    expect(exit).toMatchObject({ code: 0, signal: null });
    const out = runner.stdout();
    expect(out).toContain('waiting for the in-flight pass and mission runs');
    expect(out).toContain('mission runs still in flight at shutdown were aborted');
    expect(out).not.toContain('shutdown failed');
    expect(out).toMatch(/"msg":"stopped"/);
    expect(out).not.toContain('MANA_LLM_API_KEY is unset');
  }, 90_000);

  it('ignores a second SIGTERM during the graceful shutdown (a process-group kill) and exits 0', async () => {
    const runner = await startPlanning({ MANA_AI_SHUTDOWN_TIMEOUT_MS: '2000' });
    runner.child.kill('SIGTERM');
    await waitForOutput(runner, 'waiting for the in-flight pass and mission runs');
    runner.child.kill('SIGTERM');
    const exit = await runner.exited;
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(runner.stdout()).toContain('already shutting down: signal ignored');
    expect(runner.stdout()).toMatch(/"msg":"stopped"/);
  }, 90_000);

  it('exits 1 at once on a SIGINT that comes more than a second after the first signal', async () => {
    const runner = await startPlanning({ MANA_AI_SHUTDOWN_TIMEOUT_MS: '60000' });
    runner.child.kill('SIGTERM');
    await waitForOutput(runner, 'waiting for the in-flight pass and mission runs');
    await new Promise((resolve) => setTimeout(resolve, 1200));
    runner.child.kill('SIGINT');
    const exit = await runner.exited;
    expect(exit).toMatchObject({ code: 1, signal: null });
    expect(runner.stdout()).toContain('second SIGINT: exiting now');
  }, 90_000);
});

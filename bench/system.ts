/**
 * The system bench (DESIGN §5), run with `node --import tsx bench/system.ts` after a build:
 *  - one tick over 1,000 due missions with the fake LLM at 200 ms per call and
 *    MANA_AI_CONCURRENCY=32, against the ideal (missions × LLM calls per mission × 0.2 s / 32);
 *  - the idle tick (no new rows, nothing due) with 100,000 projected missions (median of N ticks).
 * The tick is the runner's own (buildApp from apps/runner/src, the wired pipeline), in-process, on
 * `TEST_DATABASE_URL` (a superuser URL) or a throwaway embedded PostgreSQL.
 * Prints the figures and a `| figure | value | target | PASS/FAIL |` table.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TickStats } from '@mana-ai/core';
import postgres, { type Sql } from 'postgres';
import { buildApp } from '../apps/runner/src/app.js';
import { startEmbeddedPostgres } from '../apps/runner/src/embedded-postgres.js';
import { createLogger } from '../apps/runner/src/logger.js';
import { migrate } from '../apps/runner/src/migrate.js';
import { detachEmbeddedPostgresExitHooks } from '../apps/runner/src/process-hooks.js';
import { createFakeLlmServer, fakeReplies } from '../packages/planner/src/testing/index.js';
import { seedBulkMissions } from '../test/system/support/bulk-missions.js';

const DUE_MISSIONS = 1000;
const LLM_LATENCY_MS = 200;
const CONCURRENCY = 32;
const IDLE_MISSIONS = 100_000;
const IDLE_TICKS = 21;
const TICK_RATIO_TARGET = 1.3;
const IDLE_TARGET_MS = 20;

function log(message: string): void {
  process.stdout.write(`${message}\n`);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

interface Cluster {
  adminUrl: string;
  stop(): Promise<void>;
}

async function startCluster(): Promise<Cluster> {
  const given = process.env.TEST_DATABASE_URL;
  if (given) return { adminUrl: given, stop: async () => {} };
  const dataDir = await mkdtemp(join(tmpdir(), 'mana-ai-system-bench-'));
  const cluster = await startEmbeddedPostgres({ dataDir, persistent: false, fast: true });
  detachEmbeddedPostgresExitHooks();
  return {
    adminUrl: cluster.url,
    stop: async () => {
      await cluster.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A fresh, migrated database on the cluster; the returned `drop` removes it. */
async function createDatabase(adminUrl: string, name: string): Promise<{ sql: Sql; drop(): Promise<void> }> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  // The runner's pool: room for 32 missions in flight plus claims and refresh.
  const sql = postgres(url.toString(), { max: 40, onnotice: () => {} });
  await migrate(sql);
  return {
    sql,
    async drop() {
      await sql.end({ timeout: 5 });
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

/** The runner's app on `sql` with the scheduler off; ticks are run by hand. */
async function runnerApp(sql: Sql, llmUrl: string) {
  const app = buildApp(
    { sql, logger: createLogger({ level: 'silent' }), clock: { now: () => Date.now() } },
    {
      serviceKey: 'bench-service-key',
      tickEnabled: false,
      tickIntervalMs: 60_000,
      shutdownTimeoutMs: 5000,
      llmUrl,
      llmTimeoutMs: 30_000,
      llmMaxRetries: 0,
      concurrency: CONCURRENCY,
      instanceId: 'bench',
      leaseMs: 600_000,
    },
  );
  await app.ready();
  return app;
}

async function tick(app: Awaited<ReturnType<typeof runnerApp>>): Promise<{ stats: TickStats; ms: number }> {
  const started = performance.now();
  const stats = await app.pipeline.tick({ signal: new AbortController().signal });
  return { stats, ms: performance.now() - started };
}

interface DueFigures {
  tickMs: number;
  callsPerMission: number;
  idealMs: number;
  ratio: number;
  written: number;
}

async function measureDueTick(adminUrl: string): Promise<DueFigures> {
  const database = await createDatabase(adminUrl, 'bench_system_due');
  const llm = await createFakeLlmServer({ latencyMs: LLM_LATENCY_MS });
  // A plan is a tool-call round and, after the tool result, a final text round.
  llm.script(
    { when: { hasToolResult: true }, reply: fakeReplies.text('Plan ready.') },
    { reply: fakeReplies.toolCalls([{ name: 'create_task', arguments: { title: 'Weekly review' } }]) },
  );
  const app = await runnerApp(database.sql, llm.url);
  try {
    const slot = new Date(Date.now() - 3_600_000).toISOString();
    await seedBulkMissions(database.sql, {
      count: DUE_MISSIONS,
      users: 10,
      agentsPerUser: 4,
      nextRunAt: slot,
      everyMinutes: 60,
      maxConcurrentMissions: 100,
    });
    // Project the seeded rows first: the timed tick measures planning, not the bootstrap refresh.
    await app.manaProjection.refresh();
    const { stats, ms } = await tick(app);
    if (stats.plansWrittenBack !== DUE_MISSIONS || stats.errors.length > 0) {
      throw new Error(`the timed tick wrote ${stats.plansWrittenBack} of ${DUE_MISSIONS} plans (errors: ${stats.errors.slice(0, 3).join('; ')})`);
    }
    const callsPerMission = llm.requests.length / DUE_MISSIONS;
    const idealMs = (DUE_MISSIONS * callsPerMission * LLM_LATENCY_MS) / CONCURRENCY;
    return { tickMs: ms, callsPerMission, idealMs, ratio: ms / idealMs, written: stats.plansWrittenBack };
  } finally {
    await app.close();
    await llm.close();
    await database.drop();
  }
}

interface IdleFigures {
  medianMs: number;
  minMs: number;
  maxMs: number;
  projectMs: number;
}

async function measureIdleTick(adminUrl: string): Promise<IdleFigures> {
  const database = await createDatabase(adminUrl, 'bench_system_idle');
  const llm = await createFakeLlmServer();
  const app = await runnerApp(database.sql, llm.url);
  try {
    await seedBulkMissions(database.sql, {
      count: IDLE_MISSIONS,
      users: 1000,
      agentsPerUser: 2,
      nextRunAt: new Date(Date.now() + 30 * 86_400_000).toISOString(),
      everyMinutes: 60,
      maxConcurrentMissions: 5,
    });
    const projectStarted = performance.now();
    // Bring the snapshots up to date (this is the bootstrap, not the idle tick).
    for (;;) {
      const result = await app.manaProjection.refresh();
      if (result.rowsApplied === 0) break;
    }
    const projectMs = performance.now() - projectStarted;
    await database.sql`VACUUM ANALYZE`;
    const durations: number[] = [];
    for (let run = 0; run <= IDLE_TICKS; run++) {
      const { stats, ms } = await tick(app);
      if (stats.dueMissionCount !== 0 || stats.errors.length > 0) throw new Error(`the idle tick was not idle: ${JSON.stringify(stats)}`);
      // The first tick warms caches and prepared statements; the lease gauge is sampled after each.
      if (run > 0) durations.push(ms);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return { medianMs: median(durations), minMs: Math.min(...durations), maxMs: Math.max(...durations), projectMs };
  } finally {
    await app.close();
    await llm.close();
    await database.drop();
  }
}

async function main(): Promise<void> {
  const benchStart = performance.now();
  log('system bench (apps/runner tick, in-process)');
  const cluster = await startCluster();
  try {
    const due = await measureDueTick(cluster.adminUrl);
    log(
      `[due] ${due.written} plans in one tick: ${(due.tickMs / 1000).toFixed(2)} s; ${due.callsPerMission.toFixed(2)} LLM calls per mission; ` +
        `ideal ${DUE_MISSIONS} × ${due.callsPerMission.toFixed(2)} × ${LLM_LATENCY_MS / 1000} s / ${CONCURRENCY} = ${(due.idealMs / 1000).toFixed(2)} s`,
    );
    const idle = await measureIdleTick(cluster.adminUrl);
    log(
      `[idle] ${IDLE_MISSIONS.toLocaleString('en-US')} missions projected in ${(idle.projectMs / 1000).toFixed(1)} s; ` +
        `${IDLE_TICKS} idle ticks: median ${idle.medianMs.toFixed(1)} ms (min ${idle.minMs.toFixed(1)}, max ${idle.maxMs.toFixed(1)})`,
    );
    const pass = (ok: boolean) => (ok ? 'PASS' : 'FAIL');
    log('');
    log('| figure | value | target | |');
    log('|---|---|---|---|');
    log(`| 1,000 due missions, one tick (fake LLM 200 ms/call, concurrency 32) | ${(due.tickMs / 1000).toFixed(2)} s | | |`);
    log(
      `| 1,000 due missions vs ideal (${due.callsPerMission.toFixed(2)} calls × 0.2 s × 1,000 / 32 = ${(due.idealMs / 1000).toFixed(2)} s) | ${due.ratio.toFixed(2)}× | ≤ ${TICK_RATIO_TARGET}× | ${pass(due.ratio <= TICK_RATIO_TARGET)} |`,
    );
    log(`| idle tick, 100,000 missions (median of ${IDLE_TICKS}) | ${idle.medianMs.toFixed(1)} ms | ≤ ${IDLE_TARGET_MS} ms | ${pass(idle.medianMs <= IDLE_TARGET_MS)} |`);
    log(`\ntotal bench time ${((performance.now() - benchStart) / 1000).toFixed(0)} s`);
  } finally {
    await cluster.stop();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});

/**
 * Figure 6 of issue 13 (DESIGN §5): an idle runner process (defaults) with 100,000 projected
 * missions, none due, over a 60 s window:
 *  - database statements per second it causes: `pg_stat_statements` calls of the runner's role in
 *    its database (every top-level statement, BEGIN/COMMIT and SET included), when the extension is
 *    loaded (the bench's own embedded cluster preloads it); otherwise committed plus rolled-back
 *    transactions of its database from `pg_stat_database` (reported with a delay of up to ~1 s);
 *  - its CPU as a share of one core (/proc utime + stime of the runner process).
 */
import { seedBulkMissions } from '../test/system/support/bulk-missions.js';
import type { BuiltRunner } from '../test/system/support/runner-process.js';
import { type BenchCluster, createBenchDatabase } from './cluster.js';
import { type FigureRow, SERVICE_KEY, info, missionsProjected, poll, sleep, startRunner, stopAll } from './harness.js';
import { createPlannerLlm } from './planner-llm.js';
import { cpuSeconds } from './process-cpu.js';

const MISSIONS = 100_000;
// Longer than the default TICK_INTERVAL_MS of the batch-tick runner, so the figure does not depend on its phase.
const WINDOW_MS = 60_000;
const SETTLE_MS = 5000;
const STATEMENTS_TARGET = 5;
const CPU_TARGET_PERCENT = 1;

export async function measureIdle(cluster: BenchCluster, log: (line: string) => void): Promise<FigureRow[]> {
  const db = await createBenchDatabase(cluster, 'bench_idle');
  const llm = await createPlannerLlm();
  const runners: BuiltRunner[] = [];
  try {
    const seedStarted = performance.now();
    await seedBulkMissions(db.sql, {
      count: MISSIONS,
      users: 1000,
      agentsPerUser: 2,
      nextRunAt: new Date(Date.now() + 30 * 86_400_000).toISOString(),
      everyMinutes: 60,
      maxConcurrentMissions: 5,
    });
    await db.sql`VACUUM ANALYZE sync_changes`;
    log(`[idle] ${MISSIONS.toLocaleString('en-US')} missions seeded in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`);
    const runner = await startRunner(db, llm);
    runners.push(runner);
    const projectStarted = performance.now();
    let nudged = false;
    // The runner projects the log by itself at boot; a runner that does not gets one /internal/tick after 60 s.
    await poll('every mission to be projected', 300_000, async () => {
      if (!nudged && performance.now() - projectStarted > 60_000) {
        nudged = true;
        void fetch(`${runner.baseUrl}/internal/tick`, { method: 'POST', headers: { 'x-service-key': SERVICE_KEY } }).catch(() => {});
      }
      return (await missionsProjected(db)) >= MISSIONS ? true : undefined;
    }, 500);
    log(`[idle] projected by the runner ${((performance.now() - projectStarted) / 1000).toFixed(1)} s after it was healthy${nudged ? ' (after one /internal/tick)' : ''}`);
    await db.sql`VACUUM ANALYZE`;
    await sleep(SETTLE_MS);
    const pid = runner.child.pid!;
    const before = { at: performance.now(), cpu: cpuSeconds(pid)!, statements: cluster.statementStats ? await db.runnerStatements() : 0, transactions: await db.transactions() };
    await sleep(WINDOW_MS);
    const after = { at: performance.now(), cpu: cpuSeconds(pid)!, statements: cluster.statementStats ? await db.runnerStatements() : 0, transactions: await db.transactions() };
    if (llm.calls > 0) throw new Error(`the idle runner called the LLM ${llm.calls} times`);
    const windowSeconds = (after.at - before.at) / 1000;
    const cpuPercent = ((after.cpu - before.cpu) / windowSeconds) * 100;
    const transactionsPerSecond = (after.transactions - before.transactions) / windowSeconds;
    const statementsPerSecond = cluster.statementStats ? (after.statements - before.statements) / windowSeconds : transactionsPerSecond;
    const counted = cluster.statementStats ? 'pg_stat_statements, runner role' : 'pg_stat_database transactions (no pg_stat_statements)';
    log(
      `[idle] ${windowSeconds.toFixed(1)} s window: ${statementsPerSecond.toFixed(2)} statements/s (${counted}), ` +
        `${transactionsPerSecond.toFixed(2)} transactions/s in its database, runner CPU ${cpuPercent.toFixed(2)} % of a core`,
    );
    return [
      info('idle runner, 100,000 missions: transactions/s in its database (pg_stat_database)', transactionsPerSecond.toFixed(2)),
      {
        figure: `idle runner, 100,000 missions: database statements/s (${counted}, ${WINDOW_MS / 1000} s)`,
        value: statementsPerSecond.toFixed(2),
        target: `≤ ${STATEMENTS_TARGET}/s`,
        pass: statementsPerSecond <= STATEMENTS_TARGET,
      },
      {
        figure: `idle runner, 100,000 missions: runner CPU (${WINDOW_MS / 1000} s)`,
        value: `${cpuPercent.toFixed(2)} % of a core`,
        target: `≤ ${CPU_TARGET_PERCENT} %`,
        pass: cpuPercent <= CPU_TARGET_PERCENT,
      },
    ];
  } finally {
    await stopAll(runners);
    await llm.close();
    await db.drop();
  }
}

/**
 * The system bench (DESIGN §5, issue 13), run with `node --import tsx bench/system.ts [scenario…]`
 * after a build. Every figure is measured on real runner processes (`node apps/runner/dist/cli.js
 * start`, logged in as the least-privileged runner role) against a fake OpenAI-compatible LLM in
 * this process that timestamps each request, on `TEST_DATABASE_URL` (a superuser URL) or a throwaway
 * embedded PostgreSQL with pg_stat_statements. Scenarios, in order (all when none is named):
 *  - latency:    due → first LLM call, new mission and "run now" edit; the delay a hanging call adds
 *  - ideal:      1,000 due missions at 200 ms per call, concurrency 32, vs the ideal
 *  - backlog:    plans/s with 20,000 vs 1,000 due; runner and PostgreSQL CPU per plan (steady state)
 *  - instances:  3 runners vs 1 on one database
 *  - idle:       statements/s and CPU of an idle runner with 100,000 missions
 *  - memory:     resident memory of a runner while the LLM sends a 50 MB answer
 * Prints the figures and a `| figure | value | target | PASS/FAIL |` table. A scenario that fails
 * prints a FAIL row and the others still run.
 */
import { type BenchCluster, startBenchCluster } from './cluster.js';
import { measureDueLatency } from './due-latency.js';
import type { FigureRow } from './harness.js';
import { measureIdle } from './idle.js';
import { measureLlmAnswerMemory } from './llm-memory.js';
import { measureBacklogScaling, measureIdealRatio, measureInstanceScaling } from './throughput.js';

type Scenario = (cluster: BenchCluster, log: (line: string) => void) => Promise<FigureRow[]>;

const SCENARIOS: Record<string, Scenario> = {
  latency: measureDueLatency,
  ideal: measureIdealRatio,
  backlog: measureBacklogScaling,
  instances: measureInstanceScaling,
  idle: measureIdle,
  memory: measureLlmAnswerMemory,
};

function log(message: string): void {
  process.stdout.write(`${message}\n`);
}

function printTable(rows: readonly FigureRow[]): void {
  log('');
  log('| figure | value | target | |');
  log('|---|---|---|---|');
  for (const row of rows) log(`| ${row.figure} | ${row.value} | ${row.target} | ${row.pass === undefined ? '' : row.pass ? 'PASS' : 'FAIL'} |`);
}

async function main(): Promise<void> {
  const benchStart = performance.now();
  const names = process.argv.slice(2);
  const unknown = names.filter((name) => !(name in SCENARIOS));
  if (unknown.length > 0) throw new Error(`unknown scenario(s) ${unknown.join(', ')}; known: ${Object.keys(SCENARIOS).join(', ')}`);
  log('system bench (built runner processes, fake LLM, real PostgreSQL)');
  const cluster = await startBenchCluster();
  // Stop the cluster on Ctrl-C too: its processes would outlive the bench otherwise.
  process.once('SIGINT', () => {
    void cluster.stop().finally(() => process.exit(130));
  });
  log(
    `PostgreSQL: ${process.env.TEST_DATABASE_URL ? 'TEST_DATABASE_URL' : 'embedded, throwaway'}; ` +
      `pg_stat_statements ${cluster.statementStats ? 'on' : 'off'}; cluster CPU ${cluster.postmasterPid ? `from /proc (postmaster ${cluster.postmasterPid})` : 'not readable'}`,
  );
  const rows: FigureRow[] = [];
  try {
    for (const name of names.length > 0 ? names : Object.keys(SCENARIOS)) {
      const started = performance.now();
      log(`\n--- ${name} ---`);
      try {
        rows.push(...(await SCENARIOS[name]!(cluster, log)));
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        process.stderr.write(`${error instanceof Error ? (error.stack ?? message) : message}\n`);
        rows.push({ figure: `scenario ${name}`, value: `failed: ${message.split('\n')[0]!.replaceAll('|', '/').slice(0, 160)}`, target: 'runs', pass: false });
      }
      log(`[${name}] ${((performance.now() - started) / 1000).toFixed(0)} s`);
    }
  } finally {
    await cluster.stop();
  }
  printTable(rows);
  log(`\ntotal bench time ${((performance.now() - benchStart) / 1000).toFixed(0)} s`);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});

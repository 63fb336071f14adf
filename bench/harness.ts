/**
 * Shared pieces of the system bench scenarios: figure rows, runner processes, small statistics.
 */
import { type BuiltRunner, startBuiltRunner } from '../test/system/support/runner-process.js';
import type { BenchDatabase } from './cluster.js';
import type { PlannerLlm } from './planner-llm.js';

/** One row of a bench table; `pass` undefined = an informational row without a target. */
export interface FigureRow {
  figure: string;
  value: string;
  target: string;
  pass?: boolean;
}

/** An informational row. */
export function info(figure: string, value: string): FigureRow {
  return { figure, value, target: '' };
}

/** The service key every bench runner gets (inbound `X-Service-Key`, outbound LLM key unless set). */
export const SERVICE_KEY = 'bench-service-key-0123456789abcdef';

/**
 * Starts the built runner (`node apps/runner/dist/cli.js start`) on `db` as the runner role, with
 * the LLM at `llm`, the service key, warn-level logs and nothing else unless `env` adds it: every
 * other setting is the runner's default.
 */
export function startRunner(db: BenchDatabase, llm: Pick<PlannerLlm, 'url'>, env: Record<string, string> = {}): Promise<BuiltRunner> {
  return startBuiltRunner({ DATABASE_URL: db.runnerUrl, MANA_LLM_URL: llm.url, MANA_SERVICE_KEY: SERVICE_KEY, LOG_LEVEL: 'warn', ...env }, 60_000);
}

/** Stops every runner in `runners` (SIGTERM, SIGKILL after 5 s). */
export async function stopAll(runners: readonly BuiltRunner[]): Promise<void> {
  await Promise.all(runners.map((runner) => runner.stop(5000)));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `probe` every `everyMs` until it returns a value; rejects after `timeoutMs`. */
export async function poll<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, everyMs = 250): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** The `q` quantile (0..1, nearest rank) of `values`. */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

/** `ms` as seconds with two decimals, `> x s` when it is a lower bound (a timeout). */
export function seconds(ms: number, lowerBound = false): string {
  return `${lowerBound ? '> ' : ''}${(ms / 1000).toFixed(2)} s`;
}

/** Runner rows (plans written) in `db`. */
export async function plansWritten(db: BenchDatabase): Promise<number> {
  const [row] = await db.sql<{ n: string }[]>`
    SELECT count(*)::text AS n FROM sync_changes WHERE client_id = 'mana-ai-runner' AND table_name = 'aiMissions'`;
  return Number(row?.n ?? 0);
}

/** Mission snapshots projected in `db`. */
export async function missionsProjected(db: BenchDatabase): Promise<number> {
  const [row] = await db.sql<{ n: string }[]>`SELECT count(*)::text AS n FROM mana_ai.mission_snapshots`;
  return Number(row?.n ?? 0);
}

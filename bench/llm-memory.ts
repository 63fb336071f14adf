/**
 * The memory row of DESIGN §5 (issue 14): resident memory of a runner process (defaults, so the
 * LLM answer is read up to `MANA_LLM_MAX_RESPONSE_BYTES`, 1 MiB) while the fake LLM sends one
 * mission a 50 MB answer. The fake writes the answer chunk by chunk as the runner reads it; the
 * runner's RSS is sampled from /proc/<pid>/status every 20 ms from boot until it has hung up and
 * failed the plan, and its peak (`VmHWM`, the kernel's high-water mark since the process started,
 * boot included) is the figure.
 */
import { readFileSync } from 'node:fs';
import { createFakeLlmServer, fakeReplies } from '../packages/planner/src/testing/index.js';
import { seedBulkMissions } from '../test/system/support/bulk-missions.js';
import type { BuiltRunner } from '../test/system/support/runner-process.js';
import { type BenchCluster, createBenchDatabase } from './cluster.js';
import { type FigureRow, info, poll, startRunner, stopAll } from './harness.js';

const ANSWER_BYTES = 50 * 1024 * 1024;
const TARGET_MB = 256;
const SAMPLE_MS = 20;

/** A `kB` field of /proc/<pid>/status in MB (undefined when the process is gone). */
function statusMb(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

export async function measureLlmAnswerMemory(cluster: BenchCluster, log: (line: string) => void): Promise<FigureRow[]> {
  const db = await createBenchDatabase(cluster, 'bench_llm_memory');
  const llm = await createFakeLlmServer();
  llm.script({ reply: fakeReplies.large(ANSWER_BYTES) });
  const runners: BuiltRunner[] = [];
  try {
    // Not due yet: the runner boots first, so the answer arrives at a settled process.
    const dueAt = new Date(Date.now() + 15_000);
    await seedBulkMissions(db.sql, { count: 1, users: 1, agentsPerUser: 1, nextRunAt: dueAt.toISOString(), everyMinutes: 60, maxConcurrentMissions: 1 });
    const runner = await startRunner(db, llm);
    runners.push(runner);
    const pid = runner.child.pid!;
    const bootMb = statusMb(pid, 'VmRSS') ?? Number.NaN;
    let sampledPeakMb = 0;
    const sampler = setInterval(() => {
      sampledPeakMb = Math.max(sampledPeakMb, statusMb(pid, 'VmRSS') ?? 0);
    }, SAMPLE_MS);
    try {
      await poll('the LLM request', 60_000, async () => (llm.requests.length > 0 ? true : undefined), 50);
      await poll('the runner to hang up on the answer', 60_000, async () => (llm.requests[0]!.closedEarly || llm.requests[0]!.bytesSent >= ANSWER_BYTES ? true : undefined), 50);
      // The failed plan is logged once the run ended: the memory of the whole run is behind us.
      await poll('the failed plan', 60_000, async () => (/planner loop failed/.test(runner.output()) ? true : undefined), 50);
    } finally {
      clearInterval(sampler);
    }
    const peakMb = statusMb(pid, 'VmHWM') ?? sampledPeakMb;
    const request = llm.requests[0]!;
    const sentMb = request.bytesSent / 1024 / 1024;
    log(
      `[memory] runner RSS ${bootMb.toFixed(0)} MB after boot, ${sampledPeakMb.toFixed(0)} MB peak sampled while the answer streamed, ` +
        `${peakMb.toFixed(0)} MB high-water mark; the fake sent ${sentMb.toFixed(1)} MB of ${ANSWER_BYTES / 1024 / 1024} MB before the runner hung up ` +
        `(${request.closedEarly ? 'closed early' : 'read to the end'})`,
    );
    return [
      info('runner RSS after boot, before the 50 MB answer', `${bootMb.toFixed(0)} MB`),
      info('bytes of the 50 MB answer the fake LLM sent before the runner hung up', `${sentMb.toFixed(1)} MB`),
      {
        figure: 'resident memory while an LLM sends a 50 MB answer (runner peak RSS, VmHWM)',
        value: `${peakMb.toFixed(0)} MB`,
        target: `≤ ${TARGET_MB} MB`,
        pass: peakMb <= TARGET_MB && request.closedEarly,
      },
    ];
  } finally {
    await stopAll(runners);
    await llm.close();
    await db.drop();
  }
}

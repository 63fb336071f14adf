/**
 * Planning throughput of real runner processes on a backlog of due missions (bulk-seeded as the
 * webapp's `sync_changes` rows before the runners start), with the fake LLM timing every request:
 *  - figure 3: plans/s with 20,000 due vs 1,000 due (instant LLM, MANA_AI_CONCURRENCY=32, one runner);
 *  - figure 4: runner and PostgreSQL CPU per plan in the same runs (/proc utime + stime of the
 *    runner process, and of the postmaster and all its children, live or reaped), in steady state:
 *    both runs first plan {@link WARMUP_PLANS} warm-up missions due an hour earlier than the measured
 *    backlog (so they are claimed first), and their windows start after them. What the first plans
 *    after a start cost more while V8 compiles the hot code is printed as an info row;
 *  - figure 5: plans/s of 3 runners vs 1 on one database (LLM 150 ms per call, concurrency 8);
 *  - 1,000 due missions at 200 ms per call, concurrency 32: first LLM call → last plan written,
 *    against the ideal (missions × calls per mission × 0.2 s / 32).
 * A plan counts when its final LLM round arrives. Windows are counted in plans from the moment
 * every runner of the run answers /health (after the warm-up plans, where a run has them), so boots
 * stay outside.
 * Every other setting is the runner's default (TICK_INTERVAL_MS included).
 */
import { seedBulkMissions } from '../test/system/support/bulk-missions.js';
import type { BuiltRunner } from '../test/system/support/runner-process.js';
import { type BenchCluster, type BenchDatabase, createBenchDatabase } from './cluster.js';
import { type FigureRow, info, plansWritten, poll, seconds, startRunner, stopAll } from './harness.js';
import { type PlannerLlm, createPlannerLlm } from './planner-llm.js';
import { cpuSeconds } from './process-cpu.js';

const BACKLOG_RATIO_TARGET = 0.8;
const CPU_PER_PLAN_TARGET_MS = 2.5;
const SCALE_RATIO_TARGET = 2.7;
const IDEAL_RATIO_TARGET = 1.3;
/**
 * Plans before the steady-state windows of figures 3 and 4. A fresh runner spends its first ~2,000
 * plans partly compiling (V8's optimising compiler runs on background threads of the same process).
 */
const WARMUP_PLANS = 3000;

/** A window of plans, counted from the plan count when the last runner of a run answered /health. */
interface PlanWindow {
  from: number;
  to: number;
}

/** What was measured over one window. */
interface WindowFigures {
  plans: number;
  seconds: number;
  plansPerSecond: number;
  /** Runner CPU (all instances) per plan, ms. */
  runnerCpuMs: number;
  /** PostgreSQL CPU (whole cluster) per plan, ms; undefined when the cluster is not local. */
  postgresCpuMs: number | undefined;
}

interface Snapshot {
  at: number;
  plans: number;
  runnerCpu: number;
  postgresCpu: number | undefined;
}

/** A backlog run: what to seed and how to run the runners. */
interface BacklogRun {
  name: string;
  due: number;
  instances: number;
  concurrency: number;
  latencyMs: number;
  /** Missions planned before the windows, due earlier than the `due` measured ones (default 0). */
  warmup?: number;
  /** Counted from the first plan after the warm-up. */
  windows: readonly PlanWindow[];
  /** Counted from the first plan after the start, warm-up included (for the warm-up's info row). */
  startWindows?: readonly PlanWindow[];
}

/** Seeds `due` due missions and, before them, `warmup` missions due an hour earlier (planned first). */
async function seedDue(db: BenchDatabase, due: number, warmup = 0): Promise<void> {
  const slotAgo = (ms: number) => new Date(Math.floor((Date.now() - ms) / 1000) * 1000).toISOString();
  // 400 agents, each allowed 100 missions in flight: agent limits never bind here.
  const shape = { users: 100, agentsPerUser: 4, everyMinutes: 60, maxConcurrentMissions: 100 };
  if (warmup > 0) await seedBulkMissions(db.sql, { ...shape, count: warmup, nextRunAt: slotAgo(7_200_000) });
  await seedBulkMissions(db.sql, { ...shape, count: due, from: warmup + 1, agents: warmup === 0, nextRunAt: slotAgo(3_600_000) });
  // The seed's own upkeep happens now, not in a measured window where it would count as PostgreSQL
  // CPU of the plans: the vacuum its inserts trigger (autovacuum's insert threshold), the statistics,
  // and the checkpoint that writes its pages (and those of earlier scenarios).
  await db.sql`VACUUM ANALYZE sync_changes`;
  await db.sql`CHECKPOINT`;
}

function startRunners(db: BenchDatabase, llm: PlannerLlm, run: Pick<BacklogRun, 'instances' | 'concurrency' | 'name'>): Promise<BuiltRunner[]> {
  return Promise.all(
    Array.from({ length: run.instances }, (_, index) =>
      startRunner(db, llm, {
        MANA_AI_CONCURRENCY: String(run.concurrency),
        MANA_AI_INSTANCE_ID: `${run.name}-${index}`,
        // Tells the instances apart at the fake LLM.
        MANA_LLM_API_KEY: `${run.name}-key-${index}`,
      }),
    ),
  );
}

/** What {@link measureBacklog} measured: `run.windows`, then `run.startWindows`. */
interface BacklogFigures {
  windows: WindowFigures[];
  startWindows: WindowFigures[];
}

/** Seeds the run's missions, starts the runners and measures its windows. */
async function measureBacklog(cluster: BenchCluster, run: BacklogRun): Promise<BacklogFigures> {
  const db = await createBenchDatabase(cluster, `bench_${run.name}`);
  const llm = await createPlannerLlm({ latencyMs: run.latencyMs });
  const runners: BuiltRunner[] = [];
  try {
    const warmup = run.warmup ?? 0;
    await seedDue(db, run.due, warmup);
    const snapshots = new Map<number, Snapshot>();
    const windows = [...run.windows.map(({ from, to }) => ({ from: from + warmup, to: to + warmup })), ...(run.startWindows ?? [])];
    const marks = new Set(windows.flatMap((window) => [window.from, window.to]));
    const last = Math.max(...marks);
    let base: number | undefined;
    const snapshot = (plans: number): Snapshot => ({
      at: performance.now(),
      plans,
      runnerCpu: runners.reduce((sum, runner) => sum + (cpuSeconds(runner.child.pid!) ?? Number.NaN), 0),
      postgresCpu: cluster.cpuSeconds(),
    });
    llm.onCall((call) => {
      if (base === undefined || !call.final) return;
      const offset = llm.plans - base;
      if (marks.has(offset)) snapshots.set(offset, snapshot(llm.plans));
    });
    runners.push(...(await startRunners(db, llm, run)));
    base = llm.plans;
    await llm.until(() => base !== undefined && llm.plans - base >= last, 300_000, `${run.name}: ${last} plans after every runner was healthy`);
    const figures = windows.map(({ from, to }): WindowFigures => {
      const start = snapshots.get(from)!;
      const end = snapshots.get(to)!;
      const plans = end.plans - start.plans;
      const elapsed = (end.at - start.at) / 1000;
      return {
        plans,
        seconds: elapsed,
        plansPerSecond: plans / elapsed,
        runnerCpuMs: ((end.runnerCpu - start.runnerCpu) * 1000) / plans,
        postgresCpuMs: start.postgresCpu === undefined || end.postgresCpu === undefined ? undefined : ((end.postgresCpu - start.postgresCpu) * 1000) / plans,
      };
    });
    return { windows: figures.slice(0, run.windows.length), startWindows: figures.slice(run.windows.length) };
  } finally {
    await stopAll(runners);
    await llm.close();
    await db.drop();
  }
}

function describeWindow(name: string, window: WindowFigures): string {
  const postgres = window.postgresCpuMs === undefined ? 'n/a' : `${window.postgresCpuMs.toFixed(2)} ms`;
  return `[${name}] ${window.plans} plans in ${window.seconds.toFixed(2)} s = ${window.plansPerSecond.toFixed(1)} plans/s; CPU per plan: runner ${window.runnerCpuMs.toFixed(2)} ms, PostgreSQL ${postgres}`;
}

function cpuRows(label: string, window: WindowFigures): FigureRow[] {
  return [
    {
      figure: `runner CPU per plan, ${label}`,
      value: `${window.runnerCpuMs.toFixed(2)} ms`,
      target: `≤ ${CPU_PER_PLAN_TARGET_MS} ms`,
      pass: window.runnerCpuMs <= CPU_PER_PLAN_TARGET_MS,
    },
    {
      figure: `PostgreSQL CPU per plan, ${label}`,
      value: window.postgresCpuMs === undefined ? 'n/a (database not on this machine)' : `${window.postgresCpuMs.toFixed(2)} ms`,
      target: `≤ ${CPU_PER_PLAN_TARGET_MS} ms`,
      pass: window.postgresCpuMs !== undefined && window.postgresCpuMs <= CPU_PER_PLAN_TARGET_MS,
    },
  ];
}

/**
 * Figures 3 and 4: 1,000 vs 20,000 due, instant LLM, concurrency 32, one runner, each after
 * {@link WARMUP_PLANS} warm-up plans; plus, as info, CPU per plan over the first plans after the start.
 */
export async function measureBacklogScaling(cluster: BenchCluster, log: (line: string) => void): Promise<FigureRow[]> {
  const rateWindow = { from: 100, to: 900 };
  const cpuWindow = { from: 100, to: 2100 };
  const startWindow = { from: 100, to: 2100 };
  const small = await measureBacklog(cluster, { name: 'due_1k', due: 1000, warmup: WARMUP_PLANS, instances: 1, concurrency: 32, latencyMs: 0, windows: [rateWindow] });
  const [smallRate] = small.windows;
  log(describeWindow(`1,000 due after ${WARMUP_PLANS} warm-up plans, plans 100–900`, smallRate!));
  const large = await measureBacklog(cluster, {
    name: 'due_20k',
    due: 20_000,
    warmup: WARMUP_PLANS,
    instances: 1,
    concurrency: 32,
    latencyMs: 0,
    windows: [rateWindow, cpuWindow],
    startWindows: [startWindow],
  });
  const [largeRate, largeCpu] = large.windows;
  const [start] = large.startWindows;
  log(describeWindow(`20,000 due after ${WARMUP_PLANS} warm-up plans, plans 100–900`, largeRate!));
  log(describeWindow(`20,000 due after ${WARMUP_PLANS} warm-up plans, plans 100–2,100`, largeCpu!));
  log(describeWindow('the same run from its start (warm-up plans 100–2,100, V8 still compiling)', start!));
  const ratio = largeRate!.plansPerSecond / smallRate!.plansPerSecond;
  const startPostgres = start!.postgresCpuMs === undefined ? 'n/a' : `${start!.postgresCpuMs.toFixed(2)} ms`;
  return [
    info('plans/s, 1,000 due (instant LLM, concurrency 32, plans 100–900)', smallRate!.plansPerSecond.toFixed(1)),
    info('plans/s, 20,000 due (instant LLM, concurrency 32, plans 100–900)', largeRate!.plansPerSecond.toFixed(1)),
    {
      figure: 'plans/s with 20,000 due vs with 1,000 due',
      value: `${ratio.toFixed(2)}×`,
      target: `≥ ${BACKLOG_RATIO_TARGET}×`,
      pass: ratio >= BACKLOG_RATIO_TARGET,
    },
    ...cpuRows(`1,000 due (instant LLM, plans 100–900 after ${WARMUP_PLANS.toLocaleString('en-US')} warm-up plans)`, smallRate!),
    ...cpuRows(`20,000 due (instant LLM, plans 100–2,100 after ${WARMUP_PLANS.toLocaleString('en-US')} warm-up plans)`, largeCpu!),
    info(
      'CPU per plan over plans 100–2,100 after a start (runner / PostgreSQL; V8 and the new connections still warming up)',
      `${start!.runnerCpuMs.toFixed(2)} ms / ${startPostgres}`,
    ),
  ];
}

/** Figure 5: 3 runners vs 1 on one database, LLM 150 ms per call, concurrency 8. */
export async function measureInstanceScaling(cluster: BenchCluster, log: (line: string) => void): Promise<FigureRow[]> {
  const {
    windows: [one],
  } = await measureBacklog(cluster, { name: 'scale_1', due: 500, instances: 1, concurrency: 8, latencyMs: 150, windows: [{ from: 16, to: 256 }] });
  log(describeWindow('1 runner, LLM 150 ms, plans 16–256', one!));
  const {
    windows: [three],
  } = await measureBacklog(cluster, { name: 'scale_3', due: 1500, instances: 3, concurrency: 8, latencyMs: 150, windows: [{ from: 48, to: 768 }] });
  log(describeWindow('3 runners, LLM 150 ms, plans 48–768', three!));
  const ratio = three!.plansPerSecond / one!.plansPerSecond;
  return [
    info('plans/s, 1 runner (LLM 150 ms/call, concurrency 8)', one!.plansPerSecond.toFixed(1)),
    info('plans/s, 3 runners on one database (LLM 150 ms/call, concurrency 8 each)', three!.plansPerSecond.toFixed(1)),
    { figure: 'plans/s of 3 runners vs 1', value: `${ratio.toFixed(2)}×`, target: `≥ ${SCALE_RATIO_TARGET}×`, pass: ratio >= SCALE_RATIO_TARGET },
  ];
}

const IDEAL_MISSIONS = 1000;
const IDEAL_LATENCY_MS = 200;
const IDEAL_CONCURRENCY = 32;

/** 1,000 due missions, LLM 200 ms per call, concurrency 32: first LLM call → last plan written vs the ideal. */
export async function measureIdealRatio(cluster: BenchCluster, log: (line: string) => void): Promise<FigureRow[]> {
  const db = await createBenchDatabase(cluster, 'bench_due_ideal');
  const llm = await createPlannerLlm({ latencyMs: IDEAL_LATENCY_MS });
  const runners: BuiltRunner[] = [];
  try {
    await seedDue(db, IDEAL_MISSIONS);
    let firstCall: number | undefined;
    llm.onCall((call) => {
      firstCall ??= call.at;
    });
    runners.push(...(await startRunners(db, llm, { name: 'ideal', instances: 1, concurrency: IDEAL_CONCURRENCY })));
    await llm.until(() => llm.plans >= IDEAL_MISSIONS, 300_000, `${IDEAL_MISSIONS} final LLM rounds`);
    const lastWritten = await poll('every plan to be written', 60_000, async () => ((await plansWritten(db)) >= IDEAL_MISSIONS ? performance.now() : undefined), 20);
    const elapsedMs = lastWritten - firstCall!;
    const callsPerMission = llm.calls / IDEAL_MISSIONS;
    const idealMs = (IDEAL_MISSIONS * callsPerMission * IDEAL_LATENCY_MS) / IDEAL_CONCURRENCY;
    const ratio = elapsedMs / idealMs;
    log(
      `[ideal] ${IDEAL_MISSIONS} plans from the first LLM call to the last write-back: ${seconds(elapsedMs)}; ${callsPerMission.toFixed(2)} LLM calls per mission; ` +
        `ideal ${IDEAL_MISSIONS} × ${callsPerMission.toFixed(2)} × ${IDEAL_LATENCY_MS / 1000} s / ${IDEAL_CONCURRENCY} = ${seconds(idealMs)}`,
    );
    return [
      info('1,000 due missions, first LLM call → last plan written (fake LLM 200 ms/call, concurrency 32)', seconds(elapsedMs)),
      {
        figure: `1,000 due missions vs ideal (${callsPerMission.toFixed(2)} calls × 0.2 s × 1,000 / 32 = ${seconds(idealMs)})`,
        value: `${ratio.toFixed(2)}×`,
        target: `≤ ${IDEAL_RATIO_TARGET}×`,
        pass: ratio <= IDEAL_RATIO_TARGET,
      },
    ];
  } finally {
    await stopAll(runners);
    await llm.close();
    await db.drop();
  }
}

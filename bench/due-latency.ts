/**
 * Figures 1 and 2 of issue 13 (DESIGN §5), against one real runner process with default settings
 * (only DATABASE_URL, PORT, MANA_LLM_URL and the service key set), idle between events:
 *  1. due → first LLM call (a) for a new mission the webapp inserts with nextRunAt = now, (b) for a
 *     user's "run now" edit (an update row setting nextRunAt to now on a mission due in 30 days);
 *     events alternate a/b, spaced 0.7–1.3 s apart at random;
 *  2. with one mission's LLM call hanging (the fake never answers it), more new missions become due
 *     one after another: the worst of their due → first LLM call latencies against the p50 of (a).
 * "Due" is the moment before the bench sends the webapp's row; "first LLM call" the arrival of the
 * first request naming the mission at the fake LLM (same process, same clock).
 */
import { type WebappClient, createWebappClient, writeAgent, writeMission } from '../apps/runner/src/demo/seed.js';
import type { BenchCluster } from './cluster.js';
import { createBenchDatabase } from './cluster.js';
import { type FigureRow, info, missionsProjected, poll, quantile, seconds, sleep, startRunner, stopAll } from './harness.js';
import { createPlannerLlm } from './planner-llm.js';

/** Events per kind (new mission, run-now edit). */
const EVENTS = 15;
/** New missions that become due while a call hangs. */
const HANG_EVENTS = 10;
const P50_TARGET_MS = 500;
const MAX_TARGET_MS = 2000;
const HANG_EXTRA_TARGET_MS = 1000;
/** How long the bench waits for the first LLM call of the last event (a 60 s batch tick still shows up). */
const STRAGGLER_MS = 65_000;
/** With a call hanging, a mission not called after this long counts as this long (lower bound). */
const HANG_STRAGGLER_MS = 20_000;
const USER = 'u-latency';

interface DueEvent {
  missionId: string;
  dueAt: number;
}

interface Latencies {
  values: number[];
  /** Events whose mission got no LLM call before the deadline (counted at the deadline). */
  missed: number;
}

const newMissionId = (n: number) => `m-${1_000_000 + n}`;

async function writeNewMission(client: WebappClient, agentId: string, missionId: string): Promise<DueEvent> {
  const dueAt = performance.now();
  await writeMission(client, {
    id: missionId,
    title: `Mission ${missionId}`,
    objective: `Plan the week of ${missionId}`,
    cadence: { kind: 'interval', everyMinutes: 60 },
    nextRunAt: new Date().toISOString(),
    agentId,
  });
  return { missionId, dueAt };
}

async function writeRunNow(client: WebappClient, missionId: string): Promise<DueEvent> {
  const dueAt = performance.now();
  await client.update('ai', 'aiMissions', missionId, { nextRunAt: new Date().toISOString() });
  return { missionId, dueAt };
}

async function latenciesOf(events: readonly DueEvent[], firstCallAt: ReadonlyMap<string, number>, stragglerMs: number): Promise<Latencies> {
  const deadline = Math.max(...events.map((event) => event.dueAt)) + stragglerMs;
  while (performance.now() < deadline && !events.every((event) => firstCallAt.has(event.missionId))) await sleep(50);
  let missed = 0;
  const values = events.map((event) => {
    const at = firstCallAt.get(event.missionId);
    if (at === undefined) missed++;
    return (at ?? deadline) - event.dueAt;
  });
  return { values, missed };
}

function latencyRow(figure: string, latencies: Latencies): FigureRow {
  const p50 = quantile(latencies.values, 0.5);
  const max = Math.max(...latencies.values);
  const missed = latencies.missed > 0 ? ` (${latencies.missed} not called)` : '';
  return {
    figure,
    value: `p50 ${seconds(p50, latencies.missed * 2 > latencies.values.length)} / max ${seconds(max, latencies.missed > 0)}${missed}`,
    target: `p50 ≤ ${P50_TARGET_MS / 1000} s, max ≤ ${MAX_TARGET_MS / 1000} s`,
    pass: latencies.missed === 0 && p50 <= P50_TARGET_MS && max <= MAX_TARGET_MS,
  };
}

const jitteredGap = () => 700 + Math.random() * 600;

/** Runs figures 1 and 2; returns their rows. */
export async function measureDueLatency(cluster: BenchCluster, log: (line: string) => void): Promise<FigureRow[]> {
  const db = await createBenchDatabase(cluster, 'bench_due_latency');
  const llm = await createPlannerLlm();
  const client = createWebappClient(db.sql, { userId: USER });
  const runners = [];
  try {
    const agentId = await writeAgent(client, { id: 'a-latency', name: 'Planner', maxConcurrentMissions: 10 });
    const hangAgentId = await writeAgent(client, { id: 'a-latency-hang', name: 'Slow planner', maxConcurrentMissions: 10 });
    const scheduled = Array.from({ length: EVENTS }, (_, index) => `m-${2_000_000 + index}`);
    const farFuture = new Date(Date.now() + 30 * 86_400_000).toISOString();
    for (const missionId of scheduled) {
      await writeMission(client, {
        id: missionId,
        title: `Mission ${missionId}`,
        objective: `Plan the week of ${missionId}`,
        cadence: { kind: 'interval', everyMinutes: 60 },
        nextRunAt: farFuture,
        agentId,
      });
    }
    const runner = await startRunner(db, llm);
    runners.push(runner);
    // Idle means: booted, and the missions to edit are projected (with a batch tick, its first tick ran).
    await poll('the scheduled missions to be projected', 90_000, async () => ((await missionsProjected(db)) >= EVENTS ? true : undefined));
    await sleep(2000);
    if (llm.calls > 0) throw new Error(`the runner called the LLM ${llm.calls} times before any mission was due`);

    const created: DueEvent[] = [];
    const edited: DueEvent[] = [];
    for (let index = 0; index < EVENTS; index++) {
      created.push(await writeNewMission(client, agentId, newMissionId(index)));
      await sleep(jitteredGap());
      edited.push(await writeRunNow(client, scheduled[index]!));
      await sleep(jitteredGap());
    }
    const [newMission, runNow] = await Promise.all([
      latenciesOf(created, llm.firstCallAt, STRAGGLER_MS),
      latenciesOf(edited, llm.firstCallAt, STRAGGLER_MS),
    ]);
    log(`[due] new mission due now → first LLM call (ms): ${newMission.values.map((value) => value.toFixed(0)).join(' ')}`);
    log(`[due] "run now" edit → first LLM call (ms): ${runNow.values.map((value) => value.toFixed(0)).join(' ')}`);

    // Figure 2: one mission's call hangs, then more missions become due one after another.
    const hangingId = newMissionId(EVENTS);
    llm.hang(hangingId);
    const hangingEvent = await writeNewMission(client, hangAgentId, hangingId);
    const hangingCalled = await llm
      .until(() => llm.firstCallAt.has(hangingId), STRAGGLER_MS, 'the hanging mission')
      .then(() => true)
      .catch(() => false);
    const rows: FigureRow[] = [
      latencyRow(`due → first LLM call, new mission due now (idle runner, defaults; ${EVENTS} events)`, newMission),
      latencyRow(`due → first LLM call, "run now" edit (idle runner, defaults; ${EVENTS} events)`, runNow),
    ];
    const baseline = quantile(newMission.values, 0.5);
    if (!hangingCalled) {
      rows.push({ figure: 'delay a hanging LLM call adds to other due missions', value: 'the hanging mission got no LLM call', target: `≤ ${HANG_EXTRA_TARGET_MS / 1000} s`, pass: false });
      return rows;
    }
    log(`[hang] the hanging mission's first call came ${seconds(llm.firstCallAt.get(hangingId)! - hangingEvent.dueAt)} after it was due`);
    await sleep(500);
    const during: DueEvent[] = [];
    for (let index = 0; index < HANG_EVENTS; index++) {
      during.push(await writeNewMission(client, agentId, newMissionId(EVENTS + 1 + index)));
      await sleep(jitteredGap());
    }
    const withHang = await latenciesOf(during, llm.firstCallAt, HANG_STRAGGLER_MS);
    log(`[hang] new mission due now → first LLM call while a call hangs (ms): ${withHang.values.map((value) => value.toFixed(0)).join(' ')}`);
    const worst = Math.max(...withHang.values);
    const extra = worst - baseline;
    // A mission not called at all was delayed without bound: no difference to a baseline means anything then.
    const delay = withHang.missed > 0 ? `${withHang.missed} of ${HANG_EVENTS} not called within ${HANG_STRAGGLER_MS / 1000} s of being due` : seconds(extra);
    rows.push(
      info(
        `due → first LLM call while another mission's call hangs (p50 / max of ${HANG_EVENTS})`,
        `${seconds(quantile(withHang.values, 0.5), withHang.missed * 2 > HANG_EVENTS)} / ${seconds(worst, withHang.missed > 0)}`,
      ),
      {
        figure: `delay a hanging LLM call adds to other due missions (worst of ${HANG_EVENTS} minus p50 without a hang)`,
        value: delay,
        target: `≤ ${HANG_EXTRA_TARGET_MS / 1000} s`,
        pass: withHang.missed === 0 && extra <= HANG_EXTRA_TARGET_MS,
      },
    );
    return rows;
  } finally {
    // Close the LLM first: a runner waiting on the hanging call then shuts down at once.
    await llm.close();
    await stopAll(runners);
    await db.drop();
  }
}

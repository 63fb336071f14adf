import { randomUUID } from 'node:crypto';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from '@mana-ai/planner/testing';
import { deriveIterationId } from '@mana-ai/projection';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type WebappClient, createWebappClient, writeAgent, writeMission } from '../../../apps/runner/src/demo/seed.js';
import {
  type DispatcherRunner,
  type LlmCall,
  type RunnerRow,
  callerOf,
  databaseClockOffsetMs,
  databaseNowMs,
  firstCall,
  missionTitle,
  planReply,
  recordLlmCalls,
  runnerRows,
  settle,
  startDispatcherRunner,
  tailOf,
} from '../support/dispatcher-runs.js';
import { type TestDatabase, createTestDatabase, runnerUrl } from '../support/security-database.js';

// Two runner processes on one database, one of them with its wall clock five minutes ahead (a
// preload shifts its Date; no production hook). DESIGN §4 "Time": due-ness, leases and the stamps
// the runner writes come from the database's clock, so the skewed instance must behave exactly like
// the other one. A runner that trusted its own clock would plan the missions due in 15–120 s at
// once, take over the other instance's live leases, stamp field_meta five minutes in the future and
// hold a crashed instance's leases for five minutes more than one lease.

const LEASE_MS = 10_000;
const SKEW_MS = 5 * 60_000;
const CADENCE_MINUTES = 60;
const TRUE_ID = 'dsp-true';
const SKEWED_ID = 'dsp-skewed';
/** Each LLM round of the first phase takes this long, so leases are live while the other instance claims. */
const PHASE_ONE_LATENCY_MS = 300;
/** The surviving instance's answers for the crash missions. */
const CRASH_LATENCY_MS = 1000;
/** Slack for the measured database clock offset (half a local round trip at most). */
const CLOCK_SLACK_MS = 20;
/** After a lease expires, the survivor must have started the mission within this long. */
const TAKEOVER_BOUND_MS = 3000;

/** Missions of the first phase: `dueInMs` from the database's now when they are written. */
const PHASE_ONE = [
  { kind: 'now', count: 6, dueInMs: -60_000 },
  { kind: 'soon', count: 2, dueInMs: 15_000 },
  { kind: 'mid', count: 2, dueInMs: 30_000 },
  // Not due before the suite ends: whoever plans them planned them early.
  { kind: 'later', count: 2, dueInMs: 75_000 },
  { kind: 'far', count: 2, dueInMs: 120_000 },
] as const;
const PLANNED_KINDS = new Set(['now', 'soon', 'mid', 'crash']);
const CRASH_COUNT = 8;

interface SeededMission {
  label: string;
  kind: string;
  id: string;
  nextRunAt: string;
  nextRunAtMs: number;
}

/** What happened while the scenario ran, for the assertions. */
interface Timeline {
  offsetMs: number;
  killedAtMs: number;
  /** The skewed instance's live leases right after it was killed (database time). */
  leasesAtKill: { missionId: string; leaseUntilMs: number }[];
  /** The database's now when the stamps were read. */
  readAtMs: number;
  rows: RunnerRow[];
  scenarioMs: number;
  /** Each wait of the scenario, true when what it waited for happened in time. */
  settled: Record<string, boolean>;
}

const USER = `u-dsp-skew-${randomUUID()}`;

describe('two instances whose clocks are five minutes apart', () => {
  let db: TestDatabase;
  let llm: FakeLlmServer;
  let calls: LlmCall[];
  let webapp: WebappClient;
  let agentId: string;
  let trueRunner: DispatcherRunner | undefined;
  let skewedRunner: DispatcherRunner | undefined;
  const missions = new Map<string, SeededMission>();
  const timeline: Partial<Timeline> = {};

  const seed = async (kind: string, count: number, dueInMs: number): Promise<void> => {
    const base = await databaseNowMs(db.sql);
    for (let n = 1; n <= count; n++) {
      const label = `dsp-${kind}-${n}`;
      const nextRunAtMs = Math.floor(base + dueInMs);
      const nextRunAt = new Date(nextRunAtMs).toISOString();
      const id = randomUUID();
      await writeMission(webapp, {
        id,
        title: missionTitle(label),
        objective: `Plan the week of ${label}`,
        cadence: { kind: 'interval', everyMinutes: CADENCE_MINUTES },
        nextRunAt,
        agentId,
      });
      missions.set(label, { label, kind, id, nextRunAt, nextRunAtMs });
    }
  };
  const writtenIds = async (): Promise<Set<string>> => new Set((await runnerRows(db.sql)).map((row) => row.record_id));
  const ofKinds = (...kinds: string[]) => [...missions.values()].filter((mission) => kinds.includes(mission.kind));
  const diagnose = async (): Promise<string> => {
    const leases = await db.sql`
      SELECT mission_id, lease_owner, lease_until::text, next_run_at::text, now()::text AS now FROM mana_ai.mission_snapshots ORDER BY next_run_at`;
    return `${JSON.stringify({ leases, calls: calls.map(({ prompt: _prompt, ...call }) => call) }, null, 1)}\n${tailOf(trueRunner)}\n${tailOf(skewedRunner)}`;
  };

  beforeAll(async () => {
    const started = performance.now();
    [db, llm] = await Promise.all([createTestDatabase(), createFakeLlmServer()]);
    calls = recordLlmCalls(llm, (call) => {
      if (!call.label.startsWith('dsp-crash-')) return fakeReplies.delayed(PHASE_ONE_LATENCY_MS, planReply(call));
      // The skewed instance is killed while its crash missions wait for the LLM.
      return call.caller === callerOf(SKEWED_ID) ? fakeReplies.hang() : fakeReplies.delayed(CRASH_LATENCY_MS, planReply(call));
    });
    webapp = createWebappClient(db.sql, { userId: USER });
    agentId = await writeAgent(webapp, { name: 'Wochenplaner', maxConcurrentMissions: 50 });

    const databaseUrl = await runnerUrl(db);
    const env = { MANA_AI_LEASE_MS: String(LEASE_MS), MANA_AI_CONCURRENCY: '3', MANA_LLM_TIMEOUT_MS: '60000', MANA_LLM_MAX_RETRIES: '0' };
    [trueRunner, skewedRunner] = await Promise.all([
      startDispatcherRunner({ id: TRUE_ID, databaseUrl, llmUrl: llm.url, env }),
      startDispatcherRunner({ id: SKEWED_ID, databaseUrl, llmUrl: llm.url, env, skewMs: SKEW_MS }),
    ]);
    timeline.offsetMs = await databaseClockOffsetMs(db.sql);

    // Phase one: missions due now and due in 15 s … 120 s, written by the webapp while both run.
    for (const { kind, count, dueInMs } of PHASE_ONE) await seed(kind, count, dueInMs);
    const phaseOne = ofKinds('now', 'soon', 'mid');
    const settled: Record<string, boolean> = {};
    timeline.settled = settled;
    settled.phaseOne = await settle(
      'the missions due within 30 s to be planned',
      50_000,
      async () => {
        const written = await writtenIds();
        return phaseOne.every((mission) => written.has(mission.id));
      },
      diagnose,
      200,
    );

    // Phase two: kill the skewed instance while it holds leases of missions waiting for the LLM.
    await seed('crash', CRASH_COUNT, -1000);
    const crashIds = ofKinds('crash').map((mission) => mission.id);
    const labelOfId = new Map([...missions.values()].map((mission) => [mission.id, mission.label]));
    settled.crashLeases = await settle(
      'every crash mission to be leased or planned, the skewed instance holding some it asked the LLM about',
      15_000,
      async () => {
        const leased = await db.sql<{ mission_id: string; lease_owner: string | null }[]>`
          SELECT mission_id, lease_owner FROM mana_ai.mission_snapshots
          WHERE lease_until > now() AND mission_id IN ${db.sql(crashIds)}`;
        const written = await writtenIds();
        const held = leased.filter((row) => row.lease_owner === SKEWED_ID);
        const asked = held.every((row) => firstCall(calls, labelOfId.get(row.mission_id)!, callerOf(SKEWED_ID)) !== undefined);
        const distributed = crashIds.every((id) => written.has(id) || leased.some((row) => row.mission_id === id));
        return held.length > 0 && asked && distributed;
      },
      diagnose,
    );
    const killedAtLocal = Date.now();
    skewedRunner.process.child.kill('SIGKILL');
    await skewedRunner.process.exited;
    timeline.killedAtMs = killedAtLocal + timeline.offsetMs;
    const leases = await db.sql<{ mission_id: string; lease_until_ms: number }[]>`
      SELECT mission_id, (extract(epoch FROM lease_until) * 1000)::float8 AS lease_until_ms
      FROM mana_ai.mission_snapshots WHERE lease_owner = ${SKEWED_ID} AND lease_until > now()`;
    timeline.leasesAtKill = leases.map((row) => ({ missionId: row.mission_id, leaseUntilMs: row.lease_until_ms }));

    settled.crashPlanned = await settle(
      'the survivor to plan every crash mission',
      LEASE_MS + 20_000,
      async () => {
        const written = await writtenIds();
        return crashIds.every((id) => written.has(id));
      },
      diagnose,
      100,
    );
    timeline.rows = await runnerRows(db.sql);
    timeline.readAtMs = await databaseNowMs(db.sql);
    timeline.scenarioMs = Math.round(performance.now() - started);
  }, 150_000);

  afterAll(async () => {
    await Promise.all([trueRunner?.stop(), skewedRunner?.stop(1000)]);
    await llm?.close();
    await db?.drop();
  });

  const toDatabaseMs = (call: LlmCall): number => call.atMs + timeline.offsetMs!;
  const stranded = (): Set<string> => new Set(timeline.leasesAtKill!.map((lease) => lease.missionId));

  it('runs the skewed instance five minutes ahead and the other on time, by their own log stamps', () => {
    // pino stamps each line with the process's Date.now(): compare it with when the line arrived here.
    const lags = (runner: DispatcherRunner) => runner.logTimes.map(({ loggedMs, arrivedMs }) => loggedMs - arrivedMs);
    const skewed = lags(skewedRunner!);
    const onTime = lags(trueRunner!);
    expect(skewed.length).toBeGreaterThan(0);
    expect(onTime.length).toBeGreaterThan(0);
    expect(skewed.filter((lag) => lag < SKEW_MS - 5000 || lag > SKEW_MS + 100)).toEqual([]);
    expect(onTime.filter((lag) => lag < -5000 || lag > 100)).toEqual([]);
    expect(Math.abs(timeline.offsetMs!)).toBeLessThan(5000);
    console.info(`clock skew: the scenario took ${timeline.scenarioMs} ms; database − test clock ${timeline.offsetMs!.toFixed(1)} ms`);
  });

  it('plans the missions due within the scenario and strands leases by the kill, in time', () => {
    expect(timeline.settled).toEqual({ phaseOne: true, crashLeases: true, crashPlanned: true });
  });

  it('gives no mission LLM calls from both instances for one due slot', () => {
    const strandedIds = stranded();
    const phaseOneCallers = new Set(calls.filter((call) => !call.label.startsWith('dsp-crash-')).map((call) => call.caller));
    // Both instances took part in planning the first phase's missions.
    expect([...phaseOneCallers].sort()).toEqual([callerOf(TRUE_ID), callerOf(SKEWED_ID)].sort());
    const doubled: string[] = [];
    for (const mission of missions.values()) {
      const own = calls.filter((call) => call.label === mission.label);
      const callers = new Set(own.map((call) => call.caller));
      if (!strandedIds.has(mission.id)) {
        if (callers.size > 1) doubled.push(mission.label);
        continue;
      }
      // A crashed instance's mission: its calls all before the kill, the survivor's all after its lease.
      const lease = timeline.leasesAtKill!.find((entry) => entry.missionId === mission.id)!;
      const early = own.filter((call) =>
        call.caller === callerOf(SKEWED_ID) ? toDatabaseMs(call) > timeline.killedAtMs! + CLOCK_SLACK_MS : toDatabaseMs(call) < lease.leaseUntilMs - CLOCK_SLACK_MS,
      );
      if (early.length > 0) doubled.push(`${mission.label} (stranded)`);
    }
    expect(doubled).toEqual([]);
    expect(calls.some((call) => call.label === 'unknown')).toBe(false);
  });

  it('plans no mission before it is due on the database clock', () => {
    const early: string[] = [];
    const lateness: Record<string, number> = {};
    for (const mission of missions.values()) {
      const first = firstCall(calls, mission.label);
      if (!first) continue;
      const startMs = toDatabaseMs(first);
      if (startMs < mission.nextRunAtMs - CLOCK_SLACK_MS) early.push(`${mission.label}: ${Math.round(mission.nextRunAtMs - startMs)} ms early`);
      if (mission.kind === 'soon' || mission.kind === 'mid') lateness[mission.label] = Math.round(startMs - mission.nextRunAtMs);
    }
    expect(early).toEqual([]);
    // Every mission due within the scenario was planned; none due after its end was.
    for (const mission of ofKinds('now', 'soon', 'mid', 'crash')) expect(firstCall(calls, mission.label), mission.label).toBeDefined();
    const notDue = ofKinds('later', 'far');
    expect(notDue.every((mission) => mission.nextRunAtMs > timeline.readAtMs!)).toBe(true);
    expect(notDue.filter((mission) => firstCall(calls, mission.label) !== undefined).map((mission) => mission.label)).toEqual([]);
    expect(timeline.rows!.filter((row) => notDue.some((mission) => mission.id === row.record_id))).toEqual([]);
    console.info(`clock skew: start after the due time (ms) of the missions due in 15 s and 30 s: ${JSON.stringify(lateness)}`);
  });

  it('writes field_meta stamps that are never ahead of the database and within a second of their row', () => {
    const rows = timeline.rows!;
    const labelOfId = new Map([...missions.values()].map((mission) => [mission.id, mission.label]));
    // Rows the skewed instance wrote: missions it alone asked the LLM about.
    const bySkewed = rows.filter((row) => {
      const own = calls.filter((call) => call.label === labelOfId.get(row.record_id));
      return own.length > 0 && own.every((call) => call.caller === callerOf(SKEWED_ID));
    });
    expect(bySkewed.length).toBeGreaterThan(0);
    const wrong: string[] = [];
    for (const row of rows) {
      const label = labelOfId.get(row.record_id);
      const stamps = Object.entries(row.field_meta);
      expect(stamps.map(([field]) => field).sort(), label).toEqual(['iterations', 'nextRunAt']);
      for (const [field, stamp] of stamps) {
        const stampMs = Date.parse(stamp);
        if (!(stampMs <= timeline.readAtMs!)) wrong.push(`${label} ${field}: ${stamp} is ahead of the database's now`);
        // The write-back stamps with the database's time shortly before the row's transaction starts (created_at).
        if (Math.abs(stampMs - row.created_at_ms) > 1000) {
          wrong.push(`${label} ${field}: ${stamp} vs created_at ${new Date(row.created_at_ms).toISOString()}`);
        }
      }
      // The advanced nextRunAt is computed from the database's time of the write, not the instance's.
      const nextRunAtMs = Date.parse(String(row.data.nextRunAt));
      if (nextRunAtMs - Date.parse(row.field_meta.nextRunAt!) !== CADENCE_MINUTES * 60_000) wrong.push(`${label}: nextRunAt ${row.data.nextRunAt}`);
      // The iteration's descriptive stamps are database-calibrated too.
      const iteration = row.data.iterations?.at(-1);
      const finishedMs = Date.parse(String(iteration?.finishedAt));
      if (!(Math.abs(finishedMs - Date.parse(row.field_meta.iterations!)) <= 2000)) wrong.push(`${label}: finishedAt ${iteration?.finishedAt}`);
    }
    expect(wrong).toEqual([]);
  });

  it('writes exactly one row per planned mission, with the iteration id of its due slot', async () => {
    const rows = timeline.rows!;
    const planned = [...missions.values()].filter((mission) => PLANNED_KINDS.has(mission.kind));
    const wrong: string[] = [];
    for (const mission of planned) {
      const own = rows.filter((row) => row.record_id === mission.id);
      const expected = await deriveIterationId(mission.id, mission.nextRunAt);
      if (own.length !== 1 || own[0]!.iteration_id !== expected) wrong.push(`${mission.label}: ${own.map((row) => row.iteration_id).join(',')}`);
    }
    expect(wrong).toEqual([]);
    expect(rows).toHaveLength(planned.length);
  });

  it("has the survivor take over the killed instance's missions after one lease, not earlier or minutes later", () => {
    const leases = timeline.leasesAtKill!;
    expect(leases.length).toBeGreaterThan(0);
    const labelOfId = new Map([...missions.values()].map((mission) => [mission.id, mission.label]));
    const report: Record<string, { leaseLeftMs: number; takenOverAfterKillMs: number; afterExpiryMs: number }> = {};
    for (const lease of leases) {
      const label = labelOfId.get(lease.missionId)!;
      const takeover = firstCall(calls, label, callerOf(TRUE_ID));
      expect(takeover, label).toBeDefined();
      const takeoverMs = toDatabaseMs(takeover!);
      report[label] = {
        leaseLeftMs: Math.round(lease.leaseUntilMs - timeline.killedAtMs!),
        takenOverAfterKillMs: Math.round(takeoverMs - timeline.killedAtMs!),
        afterExpiryMs: Math.round(takeoverMs - lease.leaseUntilMs),
      };
    }
    console.info(`clock skew: takeover of the killed instance's missions: ${JSON.stringify(report)}`);
    for (const [label, entry] of Object.entries(report)) {
      // The lease ran on the database's clock: at most one lease long (renewed every third of it).
      expect(entry.leaseLeftMs, label).toBeLessThanOrEqual(LEASE_MS + 250);
      expect(entry.leaseLeftMs, label).toBeGreaterThan(0);
      // Not before the lease expired, and promptly after it.
      expect(entry.afterExpiryMs, label).toBeGreaterThanOrEqual(-CLOCK_SLACK_MS);
      expect(entry.afterExpiryMs, label).toBeLessThanOrEqual(TAKEOVER_BOUND_MS);
      expect(entry.takenOverAfterKillMs, label).toBeLessThanOrEqual(LEASE_MS + TAKEOVER_BOUND_MS);
    }
  });
});

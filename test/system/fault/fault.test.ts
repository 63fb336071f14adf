import { type FakeLlmServer, createFakeLlmServer } from '@mana-ai/planner/testing';
import { deriveIterationId } from '@mana-ai/projection';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunnerProcess, waitForHealthy } from '../../../apps/runner/test/spawn-runner.js';
import { CONNECT_TIMEOUT_SECONDS } from '../../../apps/runner/src/database.js';
import { GAUGE_SAMPLE_MS } from '../../../apps/runner/src/event-metrics.js';
import { type BulkMissionShape, bulkMissionOf, seedBulkMissions } from '../support/bulk-missions.js';
import { type FaultLedger, PLANNED_TOOL, scriptFaultyPlanner } from '../support/fault-llm.js';
import { assertRunnerBuilt, spawnBuiltRunner } from '../support/fault-runner.js';
import { type RestartablePostgres, startRestartablePostgres } from '../support/restartable-postgres.js';
import { freePort, metricValue } from '../support/runner-process.js';

const MISSIONS = 1000;
const INSTANCES = ['fault-a', 'fault-b', 'fault-c'] as const;
const KILLED = 'fault-b';
const LEASE_MS = 10_000;
const DOWN_MS = 3000;
const SCENARIO_DEADLINE_MS = 200_000;
const RUNNER_CLIENT_ID = 'mana-ai-runner';
// The restart step relies on the runner's patched postgres.js (patches/postgres@3.4.9.patch): unpatched,
// a write deferred to setImmediate hits the dropped socket and throws uncaught (porsager/postgres#1208),
// and connections that closed with a write pending hang on reconnect until their connect timeout.

interface Instance {
  id: string;
  url: string;
  process: RunnerProcess;
}

/** What happened while the scenario ran, for the assertions. */
interface Timeline {
  plannedAtKill: number;
  leasesStrandedByKill: string[];
  plannedAtRestart: number;
  inFlightLeasesAtRestart: number;
  postmasterRestarted: boolean;
  firstPlanAfterRestartMs: number;
  completedAfterMs: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, deadline: number, probe: () => Promise<T | undefined>, everyMs = 250): Promise<T> {
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

const SUITE = 'fault suite: three runners, SIGKILL mid-tick, database restarted mid-tick, faulty LLM';

describe(SUITE, () => {
  let db: RestartablePostgres;
  let llm: FakeLlmServer;
  let ledger: FaultLedger;
  const instances: Instance[] = [];
  const slot = new Date(Math.floor((Date.now() - 3_600_000) / 1000) * 1000).toISOString();
  const shape: BulkMissionShape = { count: MISSIONS, users: 10, agentsPerUser: 3, nextRunAt: slot, everyMinutes: 60, maxConcurrentMissions: 40 };
  const timeline: Partial<Timeline> = {};
  const started = performance.now();

  const planned = async (): Promise<number> => {
    const [row] = await db.sql<{ n: string }[]>`
      SELECT count(DISTINCT record_id)::text AS n FROM sync_changes WHERE client_id = ${RUNNER_CLIENT_ID} AND table_name = 'aiMissions'`;
    return Number(row?.n ?? 0);
  };
  const diagnose = async (): Promise<string> => {
    const leases = await db.sql`
      SELECT lease_owner, count(*)::text AS n, count(*) FILTER (WHERE lease_until <= now())::text AS expired,
             count(*) FILTER (WHERE next_run_at <= now())::text AS due
      FROM mana_ai.mission_snapshots GROUP BY 1`;
    const processes = instances.map(
      (instance) => `${instance.id} exit=${instance.process.child.exitCode ?? instance.process.child.signalCode}\n${instance.process.stderr().slice(-3000)}\n${instance.process.stdout().slice(-3000)}`,
    );
    return JSON.stringify({ planned: await planned(), leases, llmRequests: llm.requests.length, faults: ledger.faults, timeline }, null, 1) + processes.join('\n----\n');
  };
  const postmasterStart = async (): Promise<string> => {
    const [row] = await db.sql<{ at: string }[]>`SELECT pg_postmaster_start_time()::text AS at`;
    return row?.at ?? '';
  };
  const survivors = () => instances.filter((instance) => instance.id !== KILLED);

  beforeAll(async () => {
    assertRunnerBuilt();
    // A cluster of the suite's own, so that it can really be restarted mid-tick.
    db = await startRestartablePostgres();
    await seedBulkMissions(db.sql, shape);
    llm = await createFakeLlmServer({ latencyMs: 3 });
    ledger = scriptFaultyPlanner(llm, { seed: 20_260_421, faultRate: 0.2, faultyAttempts: 3 });
    for (const id of INSTANCES) {
      const port = await freePort();
      const runner = spawnBuiltRunner(['start'], {
        PORT: String(port),
        HOST: '127.0.0.1',
        DATABASE_URL: db.url,
        MANA_LLM_URL: llm.url,
        MANA_LLM_API_KEY: `key-${id}`,
        MANA_LLM_TIMEOUT_MS: '2000',
        MANA_LLM_MAX_RETRIES: '0',
        MANA_AI_INSTANCE_ID: id,
        MANA_AI_LEASE_MS: String(LEASE_MS),
        MANA_AI_CONCURRENCY: '8',
        TICK_ENABLED: 'true',
        TICK_INTERVAL_MS: '500',
        MANA_AI_SHUTDOWN_TIMEOUT_MS: '2000',
        // A failed plan is tried again after 1 s (default 60 s), so faulty answers are retried within the scenario.
        MANA_AI_RETRY_AFTER_MS: '1000',
        LOG_LEVEL: 'warn',
      });
      instances.push({ id, url: `http://127.0.0.1:${port}`, process: runner });
    }
    await Promise.all(instances.map((instance) => waitForHealthy(`${instance.url}/health`, instance.process, 60_000)));
    const deadline = performance.now() + SCENARIO_DEADLINE_MS;

    // SIGKILL one instance while it has LLM calls out and missions leased.
    const killed = instances.find((instance) => instance.id === KILLED)!;
    await until('the instance to be killed to be mid-tick', deadline, async () => {
      if ((ledger.byCaller.get(`Bearer key-${KILLED}`) ?? 0) < 20 || (await planned()) < 100) return undefined;
      const [row] = await db.sql<{ n: string }[]>`
        SELECT count(*)::text AS n FROM mana_ai.mission_snapshots WHERE lease_owner = ${KILLED} AND lease_until > now()`;
      return Number(row?.n) > 0 ? true : undefined;
    }, 50);
    killed.process.child.kill('SIGKILL');
    await killed.process.exited;
    timeline.plannedAtKill = await planned();
    const stranded = await db.sql<{ mission_id: string }[]>`
      SELECT mission_id FROM mana_ai.mission_snapshots WHERE lease_owner = ${KILLED} AND lease_until > now() ORDER BY mission_id`;
    timeline.leasesStrandedByKill = stranded.map((row) => row.mission_id);

    // Restart the database under the survivors while they are planning.
    await until('the survivors to be mid-tick for the restart', deadline, async () => ((await planned()) >= 450 ? true : undefined), 50);
    const [leased] = await db.sql<{ n: string }[]>`
      SELECT count(*)::text AS n FROM mana_ai.mission_snapshots WHERE lease_until > now() AND lease_owner <> ${KILLED}`;
    timeline.inFlightLeasesAtRestart = Number(leased?.n ?? 0);
    timeline.plannedAtRestart = await planned();
    const startedAtBefore = await postmasterStart();
    await db.restart(DOWN_MS);
    timeline.postmasterRestarted = (await postmasterStart()) !== startedAtBefore;
    // The survivors' pools must reconnect promptly: a driver left wedged by the dropped connections
    // would stall planning until its connect timeout, or for good.
    const backAt = performance.now();
    const plannedWhenBack = await planned();
    await until('the first plan after the restart', deadline, async () => ((await planned()) > plannedWhenBack ? true : undefined), 100);
    timeline.firstPlanAfterRestartMs = Math.round(performance.now() - backAt);

    await until(`all ${MISSIONS} missions to be planned`, deadline, async () => ((await planned()) >= MISSIONS ? true : undefined), 500).catch(
      async (error: unknown) => {
        throw new Error(`${String(error)}\n${await diagnose()}`);
      },
    );
    timeline.completedAfterMs = performance.now() - started;
    console.info(`fault suite: ${JSON.stringify({ ...timeline, leasesStrandedByKill: timeline.leasesStrandedByKill?.length, faults: ledger.faults, llmRequests: llm.requests.length })}`);
    const completedAt = Date.now() / 1000;
    // The stuck-lease gauge is sampled at most every GAUGE_SAMPLE_MS after dispatcher cycles: wait for
    // a cycle that ended that long after the last plan, so every survivor has sampled it since.
    await until('a gauge sample after completion on every survivor', deadline + GAUGE_SAMPLE_MS, async () => {
      const pages = await Promise.all(survivors().map((instance) => fetch(`${instance.url}/metrics`).then((response) => response.text())));
      const sampledAfter = completedAt + GAUGE_SAMPLE_MS / 1000 + 1;
      return pages.every((page) => (metricValue(page, 'mana_ai_last_tick_timestamp_seconds') ?? 0) > sampledAfter) ? true : undefined;
    });
  }, SCENARIO_DEADLINE_MS + GAUGE_SAMPLE_MS + 90_000);

  afterAll(async () => {
    await Promise.all(
      instances.map(async ({ process }) => {
        process.child.kill('SIGTERM');
        const exited = await Promise.race([process.exited.then(() => true), sleep(5000).then(() => false)]);
        if (!exited) process.kill();
      }),
    );
    await llm?.close();
    await db?.close();
  }, 30_000);

  it('served every kind of LLM fault, killed an instance holding leases and restarted the database mid-tick', () => {
    for (const [kind, count] of Object.entries(ledger.faults)) expect(count, kind).toBeGreaterThan(0);
    expect(timeline.leasesStrandedByKill!.length).toBeGreaterThan(0);
    expect(timeline.plannedAtKill!).toBeLessThan(MISSIONS);
    expect(timeline.plannedAtRestart!).toBeLessThan(MISSIONS);
    expect(timeline.inFlightLeasesAtRestart!).toBeGreaterThan(0);
    expect(timeline.postmasterRestarted).toBe(true);
    // Well under the pool's 10 s connect timeout: reconnect backoff is capped at 2 s.
    expect(timeline.firstPlanAfterRestartMs!).toBeLessThan(CONNECT_TIMEOUT_SECONDS * 1000);
    // Missions whose LLM calls failed stayed due and were planned again in later claims.
    expect([...ledger.attempts.values()].some((attempts) => attempts > 1)).toBe(true);
    expect(timeline.completedAfterMs!).toBeLessThan(SCENARIO_DEADLINE_MS);
  });

  it('writes exactly one runner row per mission, carrying the iteration id of its due slot', async () => {
    const rows = await db.sql<{ record_id: string; user_id: string; rows: string; iteration_ids: string[] }[]>`
      SELECT record_id, min(user_id) AS user_id, count(*)::text AS rows, array_agg(actor->>'iterationId') AS iteration_ids
      FROM sync_changes WHERE client_id = ${RUNNER_CLIENT_ID}
      GROUP BY record_id`;
    expect(rows).toHaveLength(MISSIONS);
    const expected = new Map<string, { userId: string; iterationId: string }>();
    for (let g = 1; g <= MISSIONS; g++) {
      const { missionId, userId } = bulkMissionOf(g, shape);
      expected.set(missionId, { userId, iterationId: await deriveIterationId(missionId, slot) });
    }
    const wrong = rows.filter((row) => {
      const want = expected.get(row.record_id);
      return !want || row.rows !== '1' || row.user_id !== want.userId || row.iteration_ids[0] !== want.iterationId;
    });
    expect(wrong).toEqual([]);
  });

  it('leaves no partial row: each has the iteration and the advanced nextRunAt, both stamped', async () => {
    const partial = await db.sql<{ record_id: string }[]>`
      SELECT record_id FROM sync_changes
      WHERE client_id = ${RUNNER_CLIENT_ID}
        AND NOT (
          jsonb_typeof(data->'iterations') = 'array' AND jsonb_array_length(data->'iterations') = 1
          AND data->'iterations'->0->>'id' = actor->>'iterationId'
          AND jsonb_typeof(data->'nextRunAt') = 'string' AND (data->>'nextRunAt')::timestamptz > ${slot}::timestamptz
          AND field_meta ? 'iterations' AND field_meta ? 'nextRunAt'
        )`;
    expect(partial).toEqual([]);
    const steps = await db.sql<{ tool: string; n: string }[]>`
      SELECT step->'intent'->>'toolName' AS tool, count(*)::text AS n
      FROM sync_changes, jsonb_array_elements(data->'iterations'->0->'plan') AS step
      WHERE client_id = ${RUNNER_CLIENT_ID} GROUP BY 1`;
    // Rejected calls (unknown tool, arguments against the schema) are never recorded as steps.
    expect(steps.map((step) => step.tool)).toEqual([PLANNED_TOOL]);
    expect(Number(steps[0]?.n)).toBeGreaterThanOrEqual(MISSIONS);
  });

  it('projects one iteration per mission, no longer due, with no lease left', async () => {
    const [snapshot] = await db.sql<{ missions: string; one_iteration: string; not_due: string; leased: string }[]>`
      SELECT count(*)::text AS missions,
             count(*) FILTER (WHERE jsonb_array_length(record->'iterations') = 1)::text AS one_iteration,
             count(*) FILTER (WHERE next_run_at > now())::text AS not_due,
             count(*) FILTER (WHERE lease_owner IS NOT NULL OR lease_until IS NOT NULL)::text AS leased
      FROM mana_ai.mission_snapshots`;
    expect(snapshot).toEqual({ missions: String(MISSIONS), one_iteration: String(MISSIONS), not_due: String(MISSIONS), leased: '0' });
    const [killedLeases] = await db.sql<{ n: string }[]>`SELECT count(*)::text AS n FROM mana_ai.mission_snapshots WHERE lease_owner = ${KILLED}`;
    expect(killedLeases?.n).toBe('0');
    const strandedPlanned = await db.sql<{ n: string }[]>`
      SELECT count(DISTINCT record_id)::text AS n FROM sync_changes
      WHERE client_id = ${RUNNER_CLIENT_ID} AND record_id IN ${db.sql(timeline.leasesStrandedByKill!)}`;
    expect(Number(strandedPlanned[0]?.n)).toBe(timeline.leasesStrandedByKill!.length);
  });

  it('keeps every survivor healthy with no expired lease on its gauge', async () => {
    for (const instance of survivors()) {
      expect(instance.process.child.exitCode, instance.id).toBeNull();
      const health = await fetch(`${instance.url}/health`);
      expect(health.status, instance.id).toBe(200);
      const page = await (await fetch(`${instance.url}/metrics`)).text();
      expect(metricValue(page, 'mana_ai_expired_leases'), instance.id).toBe(0);
      // Ticks ran longer than a third of the 10 s lease: the heartbeat renewed running missions.
      expect(metricValue(page, 'mana_ai_lease_renewals_total', { outcome: 'renewed' }), instance.id).toBeGreaterThan(0);
      const renewals = Object.fromEntries(['renewed', 'lost', 'failed'].map((outcome) => [outcome, metricValue(page, 'mana_ai_lease_renewals_total', { outcome }) ?? 0]));
      console.info(`fault suite: lease heartbeat of ${instance.id}: ${JSON.stringify(renewals)}`);
    }
  });
});

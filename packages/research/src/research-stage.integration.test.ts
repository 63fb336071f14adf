import { type ManualClock, type Mission, type ResearchPort, createEventBus, createManualClock } from '@mana-ai/core';
import { type TestDatabase, createTestDatabase, runnerUrl } from '@mana-ai/test-postgres';
import type { Sql } from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type DeepResearchAnswer, createDeepResearchClient } from './deep-research.js';
import { createResearchJobStore } from './research-job-store.js';
import {
  type ResearchEvents,
  type ResearchStageOptions,
  createResearchStage,
  toResearchMission,
} from './research-stage.js';
import { createShallowResearchClient } from './shallow-research.js';
import { type FakeResearchServer, startFakeResearchServer } from './testing/index.js';
import type { ResearchMission } from './trigger.js';

const SERVICE_KEY = 'stage-service-key';
const T0 = '2026-04-21T06:00:00.000Z';
const MINUTE = 60_000;

let db: TestDatabase;
let server: FakeResearchServer;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startFakeResearchServer({ serviceKey: SERVICE_KEY, newsAuth: { serviceKey: SERVICE_KEY } });
});
afterAll(async () => {
  await server.close();
  await db.drop();
});
afterEach(() => {
  server.requests.length = 0;
  for (const route of ['discover', 'search', 'submit', 'poll'] as const) server.reply(route, undefined);
});

const answer: DeepResearchAnswer = {
  answer: 'Drei Programme fördern Balkonkraftwerke.',
  citations: [{ url: 'https://foerderung.example', title: 'Förderung' }],
};

let missionCounter = 0;
function mission(overrides: Partial<ResearchMission> = {}): ResearchMission {
  missionCounter += 1;
  return {
    id: `m-${missionCounter}`,
    userId: 'u-1',
    objective: 'Deep dive: aktuelle Förderung für Balkonkraftwerke',
    conceptMarkdown: '',
    ...overrides,
  };
}

function setup(options: ResearchStageOptions & { withDeep?: boolean; withShallow?: boolean; sql?: Sql } = {}) {
  const { withDeep = true, withShallow = true, sql = db.sql, ...stageOptions } = options;
  const clock: ManualClock = createManualClock(T0);
  const events = createEventBus<ResearchEvents>();
  const seen: { name: keyof ResearchEvents; payload: ResearchEvents[keyof ResearchEvents] }[] = [];
  events.onAny((name, payload) => seen.push({ name, payload }));
  const store = createResearchJobStore({ sql });
  const stage = createResearchStage(
    {
      store,
      clock,
      events,
      ...(withDeep ? { deep: createDeepResearchClient({}, { baseUrl: server.url, serviceKey: SERVICE_KEY }) } : {}),
      ...(withShallow
        ? {
            shallow: createShallowResearchClient(
              {},
              { baseUrl: server.url, auth: { type: 'service-key', serviceKey: SERVICE_KEY } },
            ),
          }
        : {}),
    },
    { deepResearchEnabled: withDeep, maxJobAgeMs: 60 * MINUTE, maxFailedPolls: 3, ...stageOptions },
  );
  const names = () => seen.map((event) => event.name);
  return { clock, stage, store, seen, names };
}

async function jobRows(missionId: string) {
  return db.sql`
    SELECT task_id, state, remote_status, failed_polls, last_polled_at, result
    FROM mana_ai.mission_research_jobs WHERE user_id = 'u-1' AND mission_id = ${missionId}`;
}

function completeTask(taskId: string, status: 'completed' | 'failed' | 'cancelled', withAnswer = true): void {
  const task = server.tasks.get(taskId);
  if (!task) throw new Error(`no task ${taskId}`);
  task.status = status;
  if (withAnswer && status === 'completed') task.answer = answer;
}

describe('createResearchStage', () => {
  it('carries a deep-research job across ticks and keeps the answer until a plan is written', async () => {
    const { stage, clock, names } = setup();
    const m = mission();

    const first = await stage.run(m);
    expect(first).toEqual({ status: 'pending', taskId: expect.any(String) });
    const taskId = first.status === 'pending' ? first.taskId : '';
    expect(server.requestsTo('submit')[0]?.body).toEqual({ query: m.objective, provider: 'gemini-deep-research-max' });
    expect(await jobRows(m.id)).toEqual([
      { task_id: taskId, state: 'running', remote_status: 'queued', failed_polls: 0, last_polled_at: null, result: null },
    ]);
    expect(names()).toEqual(['research.submitted', 'research.pending-skip']);

    clock.advance(MINUTE);
    server.tasks.get(taskId)!.status = 'running';
    expect(await stage.run(m)).toEqual({ status: 'pending', taskId });
    expect(await jobRows(m.id)).toMatchObject([
      { state: 'running', remote_status: 'running', last_polled_at: new Date(clock.now()) },
    ]);

    clock.advance(MINUTE);
    completeTask(taskId, 'completed');
    const third = await stage.run(m);
    expect(third).toMatchObject({
      status: 'ready',
      source: 'deep',
      input: { id: '__web-research__', module: 'news-research', table: 'web', title: `Deep Research: "${m.objective.slice(0, 60)}"` },
    });
    expect(third.status === 'ready' && third.input?.content).toContain('Drei Programme fördern Balkonkraftwerke.');
    expect(await jobRows(m.id)).toMatchObject([{ state: 'completed', result: answer }]);

    // The plan failed: the answer is kept and served again without another poll or submit.
    await stage.acknowledge(m, false);
    const pollsBefore = server.requestsTo('poll').length;
    expect(await stage.run(m)).toEqual(third);
    expect(server.requestsTo('poll')).toHaveLength(pollsBefore);
    expect(server.requestsTo('submit')).toHaveLength(1);
    expect(server.requestsTo('discover')).toHaveLength(0);

    await stage.acknowledge(m, true);
    expect(await jobRows(m.id)).toEqual([]);
    expect(names()).toEqual([
      'research.submitted',
      'research.pending-skip',
      'research.pending-skip',
      'research.completed',
      'research.consumed',
    ]);
  });

  it('consumes the kept answer when markConsumed is called', async () => {
    const { stage } = setup();
    const m = mission();
    const first = await stage.run(m);
    completeTask(first.status === 'pending' ? first.taskId : '', 'completed');
    expect(await stage.run(m)).toMatchObject({ status: 'ready', source: 'deep' });
    await stage.markConsumed(m);
    expect(await jobRows(m.id)).toEqual([]);
  });

  it('falls back to shallow research in the same tick when the submit is rejected', async () => {
    server.reply('submit', { status: 500, json: { error: 'boom' } });
    const { stage, seen } = setup();
    const m = mission();
    const outcome = await stage.run(m);
    expect(outcome).toMatchObject({ status: 'ready', source: 'shallow', input: { id: '__web-research__' } });
    expect(await jobRows(m.id)).toEqual([]);
    expect(seen.map((event) => event.name)).toEqual(['research.submit-failed', 'research.shallow']);
    expect(seen[0]?.payload).toMatchObject({ code: 'RESEARCH_HTTP_STATUS', status: 500, provider: 'gemini-deep-research-max' });
    expect(server.requestsTo('discover')[0]?.headers).toMatchObject({ 'x-service-key': SERVICE_KEY, 'x-user-id': 'u-1' });
  });

  it('gives the job up and researches shallowly in the same tick when the provider fails', async () => {
    for (const status of ['failed', 'cancelled'] as const) {
      const { stage, names } = setup();
      const m = mission();
      const first = await stage.run(m);
      completeTask(first.status === 'pending' ? first.taskId : '', status);
      expect(await stage.run(m)).toMatchObject({ status: 'ready', source: 'shallow' });
      expect(await jobRows(m.id)).toEqual([]);
      expect(names()).toEqual(['research.submitted', 'research.pending-skip', 'research.failed', 'research.shallow']);
    }
  });

  it('falls back to shallow research when the job completes without an answer', async () => {
    const { stage, seen } = setup();
    const m = mission();
    const first = await stage.run(m);
    completeTask(first.status === 'pending' ? first.taskId : '', 'completed', false);
    expect(await stage.run(m)).toMatchObject({ status: 'ready', source: 'shallow' });
    expect(seen.find((event) => event.name === 'research.completed')?.payload).toMatchObject({ hasAnswer: false });
    expect(await jobRows(m.id)).toEqual([]);
  });

  it('gives the job up at once when the poll answers 404', async () => {
    const { stage, seen } = setup();
    const m = mission();
    const first = await stage.run(m);
    server.tasks.delete(first.status === 'pending' ? first.taskId : '');
    expect(await stage.run(m)).toMatchObject({ status: 'ready', source: 'shallow' });
    expect(seen.find((event) => event.name === 'research.failed')?.payload).toMatchObject({
      reason: 'not-found',
      code: 'RESEARCH_HTTP_STATUS',
    });
  });

  it('keeps skipping on non-2xx polls and gives up at the configured count', async () => {
    const { stage, clock } = setup({ maxFailedPolls: 3 });
    const m = mission();
    await stage.run(m);
    server.reply('poll', { status: 500, raw: 'oops' });
    for (const expected of [1, 2]) {
      clock.advance(MINUTE);
      expect(await stage.run(m)).toMatchObject({ status: 'pending' });
      expect(await jobRows(m.id)).toMatchObject([{ failed_polls: expected }]);
    }
    clock.advance(MINUTE);
    expect(await stage.run(m)).toMatchObject({ status: 'ready', source: 'shallow' });
    expect(await jobRows(m.id)).toEqual([]);
  });

  it('gives a job that cannot be polled up once it is older than the configured age', async () => {
    const { stage, clock, seen } = setup({ maxJobAgeMs: 30 * MINUTE, maxFailedPolls: 100 });
    const m = mission();
    await stage.run(m);
    server.reply('poll', { delayMs: 1_000, json: {} });
    // A stage with a short poll timeout plays the next ticks on the same table.
    const impatient = createResearchStage(
      {
        store: createResearchJobStore({ sql: db.sql }),
        clock,
        deep: createDeepResearchClient({}, { baseUrl: server.url, serviceKey: SERVICE_KEY, pollTimeoutMs: 50 }),
      },
      { deepResearchEnabled: true, maxJobAgeMs: 30 * MINUTE },
    );
    clock.advance(10 * MINUTE);
    expect(await impatient.run(m)).toMatchObject({ status: 'pending' });
    expect(await jobRows(m.id)).toMatchObject([{ failed_polls: 0, last_polled_at: new Date(clock.now()) }]);
    clock.advance(20 * MINUTE);
    expect(await impatient.run(m)).toEqual({ status: 'ready', input: null, source: 'none' });
    expect(await jobRows(m.id)).toEqual([]);
    expect(seen.map((event) => event.name)).toEqual(['research.submitted', 'research.pending-skip']);
  });

  it('submits when the mission flag asks for deep research even without the trigger', async () => {
    const { stage } = setup();
    const m = mission({ objective: 'Plane die Woche', deepResearch: true });
    expect(await stage.run(m)).toMatchObject({ status: 'pending' });
  });

  it('does not submit when the mission flag opts out even though the trigger matches', async () => {
    const { stage } = setup();
    const m = mission({ deepResearch: false });
    expect(await stage.run(m)).toMatchObject({ status: 'ready', source: 'shallow' });
    expect(server.requestsTo('submit')).toHaveLength(0);
  });

  it('does not submit when deep research is not enabled, but finishes a running job', async () => {
    const enabled = setup();
    const m = mission();
    const first = await enabled.stage.run(m);
    const disabled = setup({ deepResearchEnabled: false });
    expect(disabled.stage.wantsDeepResearch(m)).toBe(false);
    completeTask(first.status === 'pending' ? first.taskId : '', 'completed');
    expect(await disabled.stage.run(m)).toMatchObject({ status: 'ready', source: 'deep' });
    const other = mission();
    expect(await disabled.stage.run(other)).toMatchObject({ status: 'ready', source: 'shallow' });
    expect(server.requestsTo('submit')).toHaveLength(1);
  });

  it('reads the key set of missions with a job once, and no mission’s job, when deep research is disabled and they have none', async () => {
    // The runner's login with every statement recorded, named by the function it calls.
    const statements: string[] = [];
    const runner = db.connect({ url: await runnerUrl(db), max: 4, debug: (_connection, query) => statements.push(query) });
    const called = () => statements.map((query) => /mana_ai\.(\w+)\(/.exec(query)?.[1] ?? query.trim());
    await runner`SELECT 1`;
    statements.length = 0;
    const { stage, clock } = setup({ deepResearchEnabled: false, sql: runner });
    // An idle stage reads nothing.
    expect(called()).toEqual([]);
    const missions = Array.from({ length: 8 }, () => mission());
    // Concurrent runs share one load of the key set.
    const outcomes = await Promise.all(missions.map((m) => stage.run(m)));
    expect(outcomes.map((outcome) => outcome.status === 'ready' && outcome.source)).toEqual(missions.map(() => 'shallow'));
    for (const m of missions) await stage.markConsumed(m);
    clock.advance(4_999);
    for (const m of missions) expect(await stage.run(m)).toMatchObject({ status: 'ready', source: 'shallow' });
    expect(called()).toEqual(['research_job_keys']);
    // Once its lifetime has passed, the next run loads it again.
    clock.advance(1);
    await stage.run(missions[0]!);
    expect(called()).toEqual(['research_job_keys', 'research_job_keys']);
  });

  it('finds a job another instance submitted once the key set’s lifetime has passed on a disabled instance', async () => {
    // Two stages on one database: this instance has deep research disabled, the other enabled.
    const disabled = setup({ deepResearchEnabled: false });
    const enabled = setup();
    const m = mission();
    expect(await disabled.stage.run(m)).toMatchObject({ status: 'ready', source: 'shallow' });
    const submitted = await enabled.stage.run(m);
    expect(submitted).toEqual({ status: 'pending', taskId: expect.any(String) });
    completeTask(submitted.status === 'pending' ? submitted.taskId : '', 'completed');
    // The key set read before the submit holds for 5 seconds…
    disabled.clock.advance(4_000);
    expect(await disabled.stage.run(m)).toMatchObject({ status: 'ready', source: 'shallow' });
    // …then it is read again: the other instance's job is polled and its answer used.
    disabled.clock.advance(1_000);
    expect(await disabled.stage.run(m)).toMatchObject({ status: 'ready', source: 'deep' });
    expect(await jobRows(m.id)).toMatchObject([{ state: 'completed', result: answer }]);
    await disabled.stage.markConsumed(m);
    expect(await jobRows(m.id)).toEqual([]);
  });

  it('reads each mission’s job when the key set is incomplete', async () => {
    const enabled = setup();
    const withJobs = [mission(), mission()];
    for (const m of withJobs) {
      const submitted = await enabled.stage.run(m);
      completeTask(submitted.status === 'pending' ? submitted.taskId : '', 'completed');
    }
    const { stage, store } = setup({ deepResearchEnabled: false });
    // A key set of one key: more missions have a job than it holds.
    const jobKeys = store.jobKeys.bind(store);
    store.jobKeys = () => jobKeys(1);
    let loads = 0;
    const load = store.load.bind(store);
    store.load = async (userId, missionId) => {
      loads++;
      return load(userId, missionId);
    };
    for (const m of withJobs) expect(await stage.run(m)).toMatchObject({ status: 'ready', source: 'deep' });
    expect(await stage.run(mission())).toMatchObject({ status: 'ready', source: 'shallow' });
    expect(loads).toBe(3);
  });

  it('reads the mission’s job when the key set cannot be loaded, and tries the key set again on the next run', async () => {
    const enabled = setup();
    const m = mission();
    const submitted = await enabled.stage.run(m);
    completeTask(submitted.status === 'pending' ? submitted.taskId : '', 'completed');
    const { stage, store } = setup({ deepResearchEnabled: false });
    const jobKeys = store.jobKeys.bind(store);
    let attempts = 0;
    store.jobKeys = async (maxKeys) => {
      attempts++;
      if (attempts === 1) throw new Error('connection lost');
      return jobKeys(maxKeys);
    };
    expect(await stage.run(m)).toMatchObject({ status: 'ready', source: 'deep' });
    expect(await stage.run(m)).toMatchObject({ status: 'ready', source: 'deep' });
    expect(attempts).toBe(2);
  });

  it('sends nothing and returns no input when the objective is ciphertext', async () => {
    const { stage } = setup();
    const m = mission({ objective: 'enc:1:aGVsbG8.d29ybGQ', conceptMarkdown: 'deep dive news', deepResearch: true });
    expect(stage.wantsDeepResearch(m)).toBe(false);
    expect(await stage.run(m)).toEqual({ status: 'ready', input: null, source: 'none' });
    expect(server.requests).toHaveLength(0);
  });

  it('returns no input when neither trigger matches', async () => {
    const { stage } = setup();
    expect(await stage.run(mission({ objective: 'Einkaufsliste', conceptMarkdown: 'Milch' }))).toEqual({
      status: 'ready',
      input: null,
      source: 'none',
    });
    expect(server.requests).toHaveLength(0);
  });

  it('never reads the job table when no deep client is configured', async () => {
    const { stage } = setup({ withDeep: false });
    await db.sql`INSERT INTO mana_ai.mission_research_jobs (user_id, mission_id, task_id, provider_id) VALUES ('u-1', 'orphan', 't', 'p')`;
    expect(await stage.run(mission({ id: 'orphan' }))).toMatchObject({ status: 'ready', source: 'shallow' });
    await stage.acknowledge({ id: 'orphan', userId: 'u-1' }, true);
    expect(await jobRows('orphan')).toHaveLength(1);
    expect(server.requestsTo('poll')).toHaveLength(0);
  });

  it('reports a shallow error without throwing when mana-api rejects the call', async () => {
    server.reply('discover', { status: 401, json: { error: 'unauthorized' } });
    const { stage, seen } = setup({ withDeep: false });
    expect(await stage.run(mission())).toEqual({ status: 'ready', input: null, source: 'none' });
    expect(seen).toEqual([
      {
        name: 'research.shallow',
        payload: expect.objectContaining({ status: 'error', code: 'RESEARCH_HTTP_STATUS', reason: 'deep-not-requested' }),
      },
    ]);
  });

  it('refuses to enable deep research without a deep client', () => {
    expect(() =>
      createResearchStage({ store: createResearchJobStore({ sql: db.sql }) }, { deepResearchEnabled: true }),
    ).toThrow(expect.objectContaining({ code: 'RESEARCH_INVALID_OPTIONS' }));
  });

  it('plugs into the dispatcher as the core ResearchPort and keeps the answer until consumed', async () => {
    const { stage } = setup();
    const port: ResearchPort = stage;
    const core: Mission = {
      id: 'm-port',
      userId: 'u-1',
      title: 'Förderung',
      objective: 'Plane die Woche',
      conceptMarkdown: '',
      state: 'active',
      inputs: [],
      cadence: { kind: 'manual' },
      iterations: [],
    };
    const flagged = { ...core, deepResearch: true } as Mission;
    expect(await port.prepare({ mission: core, iterationId: 'i-1' })).toEqual({ kind: 'none' });
    expect(await port.prepare({ mission: flagged, iterationId: 'i-1' })).toEqual({ kind: 'pending' });
    const [task] = [...server.tasks.keys()].slice(-1);
    completeTask(task!, 'completed');
    const ready = await port.prepare({ mission: flagged, iterationId: 'i-1' });
    expect(ready).toMatchObject({ kind: 'ready', inputs: [{ id: '__web-research__', title: 'Deep Research: "Plane die Woche"' }] });
    expect(await port.prepare({ mission: flagged, iterationId: 'i-2' })).toEqual(ready);
    await port.consumed({ mission: flagged, iterationId: 'i-2' });
    expect(await jobRows('m-port')).toEqual([]);
  });
});

describe('toResearchMission', () => {
  it('keeps a boolean deepResearch flag and drops anything else when mapping a core mission', () => {
    const base = { id: 'm', userId: 'u', title: 't', objective: 'o', conceptMarkdown: 'c', state: 'active', inputs: [], cadence: undefined, iterations: [] };
    expect(toResearchMission({ ...base, deepResearch: false } as Mission)).toEqual({
      id: 'm',
      userId: 'u',
      objective: 'o',
      conceptMarkdown: 'c',
      deepResearch: false,
    });
    expect(toResearchMission({ ...base, deepResearch: 'yes' } as Mission)).not.toHaveProperty('deepResearch');
  });
});

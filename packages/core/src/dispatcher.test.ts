import { describe, expect, it } from 'vitest';
import { createManualClock } from './clock.js';
import type { Agent, Mission, ResolvedInput } from './domain.js';
import { createEventBus } from './events.js';
import { type DispatcherOptions, type DispatcherPorts, createDispatcher } from './dispatcher.js';
import type { MissionClaim, PlanOutcome, ResearchOutcome, WriteBackRequest } from './ports.js';
import type { DispatcherEvents } from './run-events.js';

/** One pass of a dispatcher that is not started: the old batch tick. */
function runPass(ports: DispatcherPorts, options: DispatcherOptions = {}) {
  return createDispatcher(ports, { runIdPrefix: 'r', ...options }).runPass();
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function mission(id: string, overrides: Partial<Mission> = {}): Mission {
  return {
    id,
    userId: 'u-1',
    title: `Mission ${id}`,
    objective: `Objective ${id}`,
    conceptMarkdown: '',
    state: 'active',
    nextRunAt: '2026-04-21T06:00:00.000Z',
    inputs: [{ module: 'notes', table: 'notes', id: 'n-1' }],
    cadence: { kind: 'daily', atHour: 8, atMinute: 0 },
    iterations: [],
    agentId: 'a-1',
    ...overrides,
  };
}

function agent(overrides: Partial<Agent> = {}): Agent {
  return { id: 'a-1', userId: 'u-1', name: 'Mana', role: 'helper', state: 'active', maxConcurrentMissions: 5, ...overrides };
}

function claimOf(m: Mission, a: Agent | null = agent()): MissionClaim {
  return { mission: m, agent: a, dueSlot: m.nextRunAt ?? '', iterationId: `it-${m.id}` };
}

/** In-memory ports recording what the tick did. */
function harness(claims: MissionClaim[], setup: Partial<{
  plan: (missionId: string) => Promise<PlanOutcome>;
  resolve: (missionId: string) => Promise<ResolvedInput[]>;
  research: (missionId: string) => Promise<ResearchOutcome>;
  tokensUsed: number;
  refreshFails: boolean;
  /** Like the projection: a released mission is still due and claimable again. */
  reofferReleased: boolean;
}> = {}) {
  const remaining = [...claims];
  const written: Array<{ claim: MissionClaim; request: WriteBackRequest }> = [];
  const released: string[] = [];
  const usage: Array<{ agentId: string; tokens: number }> = [];
  const resolvedFor: string[] = [];
  const consumed: string[] = [];
  const claimCalls: number[] = [];
  const events: Array<[string, unknown]> = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const bus = createEventBus<DispatcherEvents>();
  bus.onAny((name, payload) => events.push([String(name), payload]));
  const ports: DispatcherPorts = {
    clock: createManualClock('2026-04-21T06:00:05.000Z'),
    events: bus,
    store: {
      async refresh() {
        if (setup.refreshFails) throw new Error('connection refused');
        return { rowsApplied: 3, newSnapshots: 1, updatedSnapshots: 2 };
      },
      async claimDue({ limit }) {
        claimCalls.push(limit);
        return remaining.splice(0, limit);
      },
      async tokensUsedLast24h() {
        return setup.tokensUsed ?? 0;
      },
      async writeIteration(claim, request) {
        written.push({ claim, request });
        return { written: true };
      },
      async recordTokenUsage(_claim, agentId, tokens) {
        usage.push({ agentId, tokens });
      },
      async release(claim, options) {
        released.push(options?.retryAfterMs === undefined ? claim.mission.id : `${claim.mission.id}@${options.retryAfterMs}`);
        if (setup.reofferReleased) remaining.push(claim);
      },
    },
    inputs: {
      async resolve({ mission: m }) {
        resolvedFor.push(m.id);
        return setup.resolve ? setup.resolve(m.id) : [{ id: 'n-1', module: 'notes', table: 'notes', content: 'note' }];
      },
    },
    planner: {
      async plan({ mission: m }) {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        try {
          await new Promise((resolve) => setTimeout(resolve, 5));
          if (setup.plan) return await setup.plan(m.id);
          return {
            ok: true,
            calls: [{ toolName: 'create_task', params: { title: 'Einkaufen' } }],
            summary: 'Ich habe einen Task angelegt.',
            usage: { promptTokens: 100, completionTokens: 20, totalTokens: 120 },
            rounds: 2,
          };
        } finally {
          inFlight -= 1;
        }
      },
    },
    research: setup.research
      ? {
          prepare: ({ mission: m }) => setup.research!(m.id),
          async consumed({ mission: m }) {
            consumed.push(m.id);
          },
        }
      : undefined,
  };
  return { ports, written, released, usage, resolvedFor, consumed, claimCalls, events, maxInFlight: () => maxInFlight };
}

describe('Dispatcher.runPass', () => {
  it('plans each claimed mission and writes an iteration attributed to its agent', async () => {
    const h = harness([claimOf(mission('m-1')), claimOf(mission('m-2'))]);
    const stats = await runPass(h.ports, { concurrency: 2 });
    expect(stats).toEqual({
      scannedAt: '2026-04-21T06:00:05.000Z',
      dueMissionCount: 2,
      plansProduced: 2,
      plansWrittenBack: 2,
      parseFailures: 0,
      errors: [],
      skipped: {},
    });
    const first = h.written.find((w) => w.claim.mission.id === 'm-1')!;
    expect(JSON.stringify(first.request.actor)).toBe(
      '{"kind":"ai","principalId":"a-1","displayName":"Mana","missionId":"m-1","iterationId":"it-m-1","rationale":"Objective m-1"}',
    );
    expect(first.request.iteration).toEqual({
      id: 'it-m-1',
      startedAt: '2026-04-21T06:00:05.000Z',
      finishedAt: '2026-04-21T06:00:05.000Z',
      plan: [
        {
          id: 'it-m-1-0',
          summary: 'create_task',
          intent: { kind: 'toolCall', toolName: 'create_task', params: { title: 'Einkaufen' } },
          status: 'planned',
        },
      ],
      summary: 'Ich habe einen Task angelegt.',
      overallStatus: 'awaiting-review',
      source: 'server',
    });
    expect(first.request.tokensUsed).toBe(120);
    expect(h.released).toEqual([]);
  });

  it('attributes a legacy mission without agent to the default agent', async () => {
    const h = harness([claimOf(mission('m-1', { agentId: undefined }), null)]);
    await runPass(h.ports);
    expect(h.written[0]!.request.actor).toMatchObject({ principalId: 'legacy:ai-default', displayName: 'Mana' });
  });

  it('skips archived, paused and over-budget agents before any LLM call and releases their leases', async () => {
    const h = harness(
      [
        claimOf(mission('archived'), agent({ id: 'a-arch', state: 'archived' })),
        claimOf(mission('paused'), agent({ id: 'a-paused', state: 'paused' })),
        claimOf(mission('budget'), agent({ id: 'a-budget', maxTokensPerDay: 1000 })),
        claimOf(mission('zero'), agent({ id: 'a-zero', maxTokensPerDay: 0 })),
      ],
      { tokensUsed: 1000 },
    );
    const stats = await runPass(h.ports);
    expect(stats.skipped).toEqual({ 'agent-archived': 1, 'agent-paused': 1, 'agent-budget': 2 });
    expect(stats.plansProduced).toBe(0);
    expect(h.resolvedFor).toEqual([]);
    expect(h.released.sort()).toEqual(['archived', 'budget', 'paused', 'zero']);
    const decisions = h.events.filter(([name]) => name === 'agent.decision').map(([, p]) => (p as { decision: string }).decision);
    expect(decisions.sort()).toEqual(['skipped-archived', 'skipped-budget', 'skipped-budget', 'skipped-paused']);
  });

  it('skips a mission whose title or objective is still ciphertext without resolving inputs', async () => {
    const h = harness([claimOf(mission('enc', { objective: 'enc:1:abc.def' })), claimOf(mission('ok'))]);
    const stats = await runPass(h.ports);
    expect(stats.skipped).toEqual({ 'ciphertext-mission': 1 });
    expect(h.resolvedFor).toEqual(['ok']);
    expect(h.written.map((w) => w.claim.mission.id)).toEqual(['ok']);
  });

  it('skips a mission with pending research without resolving its inputs', async () => {
    const h = harness([claimOf(mission('pending')), claimOf(mission('ready'))], {
      research: async (id) =>
        id === 'pending' ? { kind: 'pending' } : { kind: 'ready', inputs: [{ id: '__web-research__', module: 'news-research', table: 'web', content: 'r' }] },
      plan: async () => ({ ok: true, calls: [], summary: '', usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0 }, rounds: 1 }),
    });
    const stats = await runPass(h.ports);
    expect(stats.skipped).toEqual({ 'research-pending': 1 });
    expect(h.resolvedFor).toEqual(['ready']);
    expect(h.consumed).toEqual(['ready']);
    expect(h.written[0]!.request.iteration.overallStatus).toBe('approved');
  });

  it('keeps planning the other missions when one mission fails', async () => {
    const h = harness([claimOf(mission('m-1')), claimOf(mission('broken')), claimOf(mission('m-3'))], {
      resolve: async (id) => {
        if (id === 'broken') throw new Error('resolver exploded');
        return [];
      },
    });
    const stats = await runPass(h.ports, { concurrency: 1 });
    expect(stats.errors).toEqual(['mission=broken: resolver exploded']);
    expect(stats.plansWrittenBack).toBe(2);
    expect(h.released).toEqual(['broken']);
    expect(h.events.find(([name]) => name === 'mission.error')?.[1]).toEqual({
      runId: expect.stringMatching(/^r-\d+$/),
      missionId: 'broken',
      userId: 'u-1',
      agentId: 'a-1',
      stage: 'inputs',
      message: 'resolver exploded',
    });
  });

  it('counts a failed planner loop, records its tokens against the budget and releases the lease', async () => {
    const h = harness([claimOf(mission('m-1'))], {
      plan: async () => ({ ok: false, reason: 'timeout', usage: { promptTokens: 50, completionTokens: 0, totalTokens: 50 } }),
    });
    const stats = await runPass(h.ports);
    expect(stats.parseFailures).toBe(1);
    expect(stats.plansProduced).toBe(0);
    expect(h.usage).toEqual([{ agentId: 'a-1', tokens: 50 }]);
    expect(h.released).toEqual(['m-1']);
    expect(h.written).toEqual([]);
  });

  it('records the tokens of a plan whose write-back fails, so the budget still counts them', async () => {
    const h = harness([claimOf(mission('m-1')), claimOf(mission('m-2'))]);
    h.ports.store.writeIteration = async (claim) => {
      if (claim.mission.id === 'm-1') throw new Error('invalid byte sequence for encoding "UTF8": 0x00');
      return { written: true };
    };
    const stats = await runPass(h.ports, { concurrency: 1 });
    expect(stats.errors).toEqual(['mission=m-1: invalid byte sequence for encoding "UTF8": 0x00']);
    expect(stats.plansWrittenBack).toBe(1);
    // m-2's tokens went with its write-back; m-1's were recorded on their own.
    expect(h.usage).toEqual([{ agentId: 'a-1', tokens: 120 }]);
    expect(h.events.filter(([name]) => name === 'tokens.used')).toHaveLength(2);
    expect(h.released).toEqual(['m-1']);
  });

  it('runs each mission at most once per pass when skipped and failed missions stay due after release', async () => {
    const claims = [
      claimOf(mission('fails')),
      claimOf(mission('sealed', { title: 'enc:1:AAAA.BBBB' })),
      claimOf(mission('paused'), agent({ state: 'paused' })),
      claimOf(mission('ok')),
    ];
    const planned: string[] = [];
    const h = harness(claims, {
      reofferReleased: true,
      plan: async (id) => {
        planned.push(id);
        return id === 'fails'
          ? { ok: false, reason: 'llm-error: server', usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0 } }
          : { ok: true, calls: [], summary: '', usage: { promptTokens: 1, completionTokens: 1, totalTokens: 2 }, rounds: 1 };
      },
    });
    const stats = await runPass(h.ports, { concurrency: 1 });
    expect(stats).toMatchObject({ dueMissionCount: 4, plansProduced: 1, parseFailures: 1, skipped: { 'ciphertext-mission': 1, 'agent-paused': 1 } });
    expect(planned.sort()).toEqual(['fails', 'ok']);
    expect(h.released.sort()).toEqual(['fails', 'paused', 'sealed']);
  });

  it('claims nothing more, aborts the plan in flight and hands its lease back when stopped past its timeout', async () => {
    const signals: AbortSignal[] = [];
    const claims = ['m-1', 'm-2', 'm-3', 'm-4'].map((id) => claimOf(mission(id)));
    const h = harness(claims, {});
    const dispatcher = createDispatcher(h.ports, { concurrency: 1, runIdPrefix: 'r' });
    h.ports.planner.plan = (request) =>
      new Promise((_, reject) => {
        signals.push(request.signal!);
        request.signal!.addEventListener('abort', () => reject(request.signal!.reason), { once: true });
      });
    const pass = dispatcher.runPass();
    while (signals.length === 0) await sleep(2);
    expect(await dispatcher.stop({ timeoutMs: 20 })).toBe(false);
    const stats = await pass;
    expect(signals).toHaveLength(1);
    expect(signals[0]?.aborted).toBe(true);
    expect(stats.dueMissionCount).toBe(1);
    expect(stats.errors).toEqual(['mission=m-1: shutdown']);
    expect(h.released).toEqual(['m-1']);
    expect(await dispatcher.runPass()).toMatchObject({ errors: ['stopping'] });
  });

  it('renews the leases of running missions while a slow plan runs, never of finished ones', async () => {
    const claims = ['slow', 'quick', 'queued'].map((id) => claimOf(mission(id)));
    const gate = { open: () => {} };
    const renewed: string[][] = [];
    const h = harness(claims, {
      plan: async (id) => {
        if (id === 'slow') await new Promise<void>((resolve) => (gate.open = resolve));
        return { ok: true, calls: [], summary: '', usage: { promptTokens: 1, completionTokens: 1, totalTokens: 2 }, rounds: 1 };
      },
    });
    h.ports.store.renew = async (batch) => {
      renewed.push(batch.map((claim) => claim.mission.id).sort());
      return batch;
    };
    const tick = runPass(h.ports, { concurrency: 2, renewEveryMs: 10 });
    await new Promise((resolve) => setTimeout(resolve, 80));
    gate.open();
    const stats = await tick;
    const beatsAtEnd = renewed.length;
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(stats.plansWrittenBack).toBe(3);
    expect(beatsAtEnd).toBeGreaterThanOrEqual(2);
    expect(renewed.length).toBe(beatsAtEnd);
    // 'quick' and then 'queued' finished within a few ms; afterwards only the slow mission is renewed.
    expect(renewed.at(-1)).toEqual(['slow']);
    expect(renewed.every((ids) => ids.includes('slow'))).toBe(true);
    expect(h.events.filter(([name]) => name === 'leases.renewed').at(-1)).toEqual(['leases.renewed', { requested: 1, held: 1, lost: 0 }]);
  });

  it('keeps renewing skipped and failed missions until the pass hands them back', async () => {
    const slowGate = { open: () => {} };
    const claims = [claimOf(mission('fails')), claimOf(mission('paused'), agent({ state: 'paused' })), claimOf(mission('slow'))];
    const h = harness(claims, {
      plan: async (id) => {
        if (id === 'fails') return { ok: false, reason: 'llm-error: server', usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0 } };
        await new Promise<void>((resolve) => (slowGate.open = resolve));
        return { ok: true, calls: [], summary: '', usage: { promptTokens: 1, completionTokens: 1, totalTokens: 2 }, rounds: 1 };
      },
    });
    const renewed: string[][] = [];
    h.ports.store.renew = async (batch) => {
      renewed.push(batch.map((claim) => claim.mission.id).sort());
      return batch;
    };
    const tick = runPass(h.ports, { concurrency: 3, renewEveryMs: 10 });
    await sleep(60);
    // 'fails' and 'paused' finished long ago and still hold their leases, renewed, like 'slow'.
    expect(renewed.at(-1)).toEqual(['fails', 'paused', 'slow']);
    expect(h.released).toEqual([]);
    slowGate.open();
    await tick;
    expect(h.written.map((w) => w.claim.mission.id)).toEqual(['slow']);
    expect(h.released.sort()).toEqual(['fails', 'paused']);
    const beatsAtEnd = renewed.length;
    await sleep(40);
    expect(renewed.length).toBe(beatsAtEnd);
  });

  it('counts a mission written back while the heartbeat ran as finished, not as a lost lease', async () => {
    const slowGate = { open: () => {} };
    const quickGate = { open: () => {} };
    const quickWritten = { done: () => {} };
    const quickDone = new Promise<void>((resolve) => (quickWritten.done = resolve));
    const h = harness(['slow', 'quick'].map((id) => claimOf(mission(id))), {
      plan: async (id) => {
        await new Promise<void>((resolve) => ((id === 'slow' ? slowGate : quickGate).open = resolve));
        return { ok: true, calls: [], summary: '', usage: { promptTokens: 1, completionTokens: 1, totalTokens: 2 }, rounds: 1 };
      },
    });
    const write = h.ports.store.writeIteration.bind(h.ports.store);
    h.ports.store.writeIteration = async (claim, request) => {
      const result = await write(claim, request);
      if (claim.mission.id === 'quick') quickWritten.done();
      return result;
    };
    let beats = 0;
    h.ports.store.renew = async (batch) => {
      beats += 1;
      if (beats > 1) return batch;
      // The quick mission is written back (its lease released) while this renewal is in flight.
      quickGate.open();
      await quickDone;
      return batch.filter((claim) => claim.mission.id !== 'quick');
    };
    const tick = runPass(h.ports, { concurrency: 2, renewEveryMs: 10 });
    while (beats === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    await quickDone;
    await new Promise((resolve) => setTimeout(resolve, 30));
    slowGate.open();
    const stats = await tick;
    expect(stats.plansWrittenBack).toBe(2);
    const beatsSeen = h.events.filter(([name]) => name === 'leases.renewed');
    expect(beatsSeen[0]).toEqual(['leases.renewed', { requested: 2, held: 1, lost: 0 }]);
    expect(beatsSeen.every(([, payload]) => (payload as { lost: number }).lost === 0)).toBe(true);
  });

  it('stops renewing a lease after maxLeaseHoldMs and survives failing renewals', async () => {
    const gate = { open: () => {} };
    const h = harness([claimOf(mission('hung'))], {
      plan: async () => {
        await new Promise<void>((resolve) => (gate.open = resolve));
        return { ok: false, reason: 'llm-error: timeout', usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0 } };
      },
    });
    const clock = h.ports.clock as ReturnType<typeof createManualClock>;
    let calls = 0;
    h.ports.store.renew = async () => {
      calls += 1;
      if (calls === 1) throw new Error('connection reset');
      return [];
    };
    const tick = runPass(h.ports, { renewEveryMs: 10, maxLeaseHoldMs: 60_000 });
    await new Promise((resolve) => setTimeout(resolve, 60));
    const beforeBound = calls;
    clock.advance(60_000);
    await new Promise((resolve) => setTimeout(resolve, 60));
    gate.open();
    const stats = await tick;
    expect(beforeBound).toBeGreaterThanOrEqual(2);
    expect(calls).toBe(beforeBound);
    expect(stats).toMatchObject({ parseFailures: 1, errors: [] });
    expect(h.released).toEqual(['hung']);
    const failed = h.events.filter(([name]) => name === 'leases.renew-failed');
    expect(failed).toEqual([['leases.renew-failed', { requested: 1, message: 'connection reset' }]]);
    expect(h.events).toContainEqual(['leases.renewed', { requested: 1, held: 0, lost: 1 }]);
  });

  it('aborts every plan in flight when stopped, whatever the concurrency, without listener warnings', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => {
      warnings.push(warning);
    };
    process.on('warning', onWarning);
    const claims = Array.from({ length: 32 }, (_, i) => claimOf(mission(`m-${i}`)));
    const h = harness(claims);
    let started = 0;
    h.ports.planner.plan = (request) =>
      new Promise((_, reject) => {
        request.signal?.addEventListener('abort', () => reject(request.signal?.reason), { once: true });
        started += 1;
      });
    const dispatcher = createDispatcher(h.ports, { concurrency: 32 });
    const pass = dispatcher.runPass();
    while (started < 32) await sleep(2);
    await dispatcher.stop({ timeoutMs: 0 });
    const stats = await pass;
    await new Promise((resolve) => setImmediate(resolve));
    process.off('warning', onWarning);
    expect(stats.errors).toHaveLength(32);
    expect(stats.errors.every((error) => error.endsWith(': shutdown'))).toBe(true);
    expect(h.released).toHaveLength(32);
    expect(warnings.filter((warning) => warning.name === 'MaxListenersExceededWarning')).toEqual([]);
  });

  it('answers the pass when a run ignores the shutdown abort, counting that run as abandoned', async () => {
    const h = harness([claimOf(mission('stubborn'))]);
    let planning = false;
    h.ports.planner.plan = () => {
      planning = true;
      return new Promise(() => {});
    };
    const dispatcher = createDispatcher(h.ports, { concurrency: 1 });
    const pass = dispatcher.runPass();
    while (!planning) await sleep(2);
    expect(await dispatcher.stop({ timeoutMs: 10 })).toBe(false);
    const stats = await pass;
    expect(stats.errors).toEqual(['mission=stubborn: abandoned at shutdown']);
    expect(h.events.filter(([name]) => name === 'tick.finished')).toHaveLength(1);
  });

  it('stamps the pass with the database clock once calibrated', async () => {
    const h = harness([]);
    h.ports.store.databaseNow = async () => Date.parse('2030-01-01T00:00:00.000Z');
    const stats = await runPass({ ...h.ports, clock: { now: () => Date.now() } });
    expect(Math.abs(Date.parse(stats.scannedAt) - Date.parse('2030-01-01T00:00:00.000Z'))).toBeLessThan(1000);
  });

  it('aborts a run that exceeds its wall-time bound and keeps the others going', async () => {
    const h = harness([claimOf(mission('hangs')), claimOf(mission('ok'))]);
    const plan = h.ports.planner.plan;
    h.ports.planner.plan = (request) =>
      request.mission.id === 'hangs'
        ? new Promise((_, reject) => request.signal?.addEventListener('abort', () => reject(request.signal?.reason), { once: true }))
        : plan(request);
    const stats = await runPass(h.ports, { concurrency: 2, maxRunMs: 50 });
    expect(stats.plansWrittenBack).toBe(1);
    expect(stats.errors).toEqual(['mission=hangs: run exceeded 50 ms']);
  });

  it('ends a run at its wall-time bound when its inputs never resolve, and aborts the inputs port', async () => {
    const h = harness([claimOf(mission('stuck')), claimOf(mission('ok'))]);
    let inputsSignal: AbortSignal | undefined;
    const resolve = h.ports.inputs.resolve;
    // A port that notices the abort but never settles: the run must end at the bound anyway.
    h.ports.inputs.resolve = (request) => {
      if (request.mission.id !== 'stuck') return resolve(request);
      inputsSignal = request.signal;
      return new Promise(() => {});
    };
    const stats = await runPass(h.ports, { concurrency: 2, maxRunMs: 50 });
    expect(stats.plansWrittenBack).toBe(1);
    expect(stats.errors).toEqual(['mission=stuck: run exceeded 50 ms']);
    expect(inputsSignal?.aborted).toBe(true);
    expect(h.written.map((w) => w.claim.mission.id)).toEqual(['ok']);
    expect(h.events).toContainEqual(['mission.error', expect.objectContaining({ missionId: 'stuck', stage: 'inputs' })]);
  });

  it('plans up to the concurrency bound in parallel and never more', async () => {
    const claims = Array.from({ length: 20 }, (_, i) => claimOf(mission(`m-${i}`)));
    const h = harness(claims);
    const stats = await runPass(h.ports, { concurrency: 4 });
    expect(stats.plansWrittenBack).toBe(20);
    expect(h.maxInFlight()).toBe(4);
    // Claims never exceed the free slots: nothing waits leased in a queue.
    expect(h.claimCalls[0]).toBe(4);
    expect(h.claimCalls.every((limit) => limit <= 4)).toBe(true);
  });

  it('stops claiming at the per-pass bound', async () => {
    const h = harness(Array.from({ length: 10 }, (_, i) => claimOf(mission(`m-${i}`))));
    const stats = await runPass(h.ports, { concurrency: 2, maxMissionsPerPass: 5 });
    expect(stats.dueMissionCount).toBe(5);
    expect(stats.plansWrittenBack).toBe(5);
  });

  it('ends the pass with an error and claims nothing when the refresh fails', async () => {
    const h = harness([claimOf(mission('m-1'))], { refreshFails: true });
    const stats = await runPass(h.ports);
    expect(stats.errors).toEqual(['refresh: connection refused']);
    expect(h.claimCalls).toEqual([]);
    expect(h.events.map(([name]) => name).filter((name) => name.startsWith('tick.'))).toEqual(['tick.started', 'tick.failed', 'tick.finished']);
  });

  it('emits no user text in any event payload', async () => {
    const h = harness([claimOf(mission('m-1', { title: 'Geheimer Titel', objective: 'Geheimes Ziel' }))]);
    await runPass(h.ports);
    const serialised = JSON.stringify(h.events);
    expect(serialised).not.toContain('Geheim');
    expect(h.events.map(([name]) => name)).toEqual(
      expect.arrayContaining([
        'tick.started',
        'tick.refreshed',
        'mission.claimed',
        'mission.planned',
        'mission.written',
        'agent.decision',
        'mission.finished',
        'tick.finished',
      ]),
    );
  });
});

/** A store whose missions become due at given local times, like snapshots on database time. */
function timedStore(entries: Array<{ claim: MissionClaim; dueAt: number }>, options: { notifying?: boolean } = {}) {
  const pending = [...entries];
  const claimedAt = new Map<string, number>();
  const released: Array<{ id: string; retryAfterMs: number | undefined }> = [];
  let refreshes = 0;
  let probes = 0;
  let claims = 0;
  let signal: ((kind: 'changes' | 'due') => void) | undefined;
  let pendingChanges = false;
  const store = {
    async refresh() {
      refreshes += 1;
      pendingChanges = false;
      return { rowsApplied: 0, newSnapshots: 0, updatedSnapshots: 0 };
    },
    async claimDue({ limit }: { limit: number }) {
      claims += 1;
      const now = Date.now();
      const due = pending.filter((entry) => entry.dueAt <= now).slice(0, limit);
      for (const entry of due) {
        pending.splice(pending.indexOf(entry), 1);
        claimedAt.set(entry.claim.mission.id, now);
      }
      return due.map((entry) => entry.claim);
    },
    async nextDueInMs() {
      if (pending.length === 0) return null;
      return Math.min(...pending.map((entry) => entry.dueAt)) - Date.now();
    },
    async watch(onSignal: (kind: 'changes' | 'due') => void) {
      signal = onSignal;
      return { notifying: options.notifying ?? true, close: async () => {} };
    },
    async hasPendingChanges() {
      probes += 1;
      return pendingChanges;
    },
    async tokensUsedLast24h() {
      return 0;
    },
    async writeIteration() {
      return { written: true };
    },
    async recordTokenUsage() {},
    async release(claim: MissionClaim, releaseOptions?: { retryAfterMs?: number }) {
      released.push({ id: claim.mission.id, retryAfterMs: releaseOptions?.retryAfterMs });
    },
  };
  return {
    store,
    claimedAt,
    released,
    add(claim: MissionClaim, dueAt: number) {
      pending.push({ claim, dueAt });
    },
    signal(kind: 'changes' | 'due') {
      signal?.(kind);
    },
    markPendingChanges() {
      pendingChanges = true;
    },
    get refreshes() {
      return refreshes;
    },
    get probes() {
      return probes;
    },
    get claims() {
      return claims;
    },
  };
}

function continuousPorts(store: DispatcherPorts['store'], plan: (missionId: string, signal?: AbortSignal) => Promise<PlanOutcome>): DispatcherPorts {
  return {
    store,
    clock: { now: () => Date.now() },
    inputs: { resolve: async () => [] },
    planner: { plan: ({ mission: m, signal }) => plan(m.id, signal) },
  };
}

const okPlan = async (): Promise<PlanOutcome> => ({
  ok: true,
  calls: [],
  summary: '',
  usage: { promptTokens: 1, completionTokens: 1, totalTokens: 2 },
  rounds: 1,
});

describe('Dispatcher (continuous)', () => {
  it('starts a mission within milliseconds of its due time, without waiting for the longest sleep', async () => {
    const t = timedStore([]);
    const dispatcher = createDispatcher(continuousPorts(t.store, okPlan), { maxSleepMs: 60_000 });
    await dispatcher.start();
    const dueAt = Date.now() + 150;
    t.add(claimOf(mission('later')), dueAt);
    // The store learns of the new mission through a signal, as a NOTIFY would tell it.
    t.signal('due');
    while (!t.claimedAt.has('later')) await sleep(5);
    await dispatcher.stop();
    const lateness = t.claimedAt.get('later')! - dueAt;
    expect(lateness).toBeGreaterThanOrEqual(0);
    expect(lateness).toBeLessThan(100);
  });

  it('keeps claiming into free slots while one mission hangs', async () => {
    const t = timedStore([{ claim: claimOf(mission('hangs')), dueAt: 0 }]);
    const started: Record<string, number> = {};
    const dispatcher = createDispatcher(
      continuousPorts(t.store, (id, signal) => {
        started[id] = Date.now();
        if (id === 'hangs') return new Promise((_, reject) => signal?.addEventListener('abort', () => reject(signal.reason), { once: true }));
        return okPlan();
      }),
      { concurrency: 2, maxSleepMs: 60_000 },
    );
    await dispatcher.start();
    while (!started.hangs) await sleep(2);
    const dueTimes: Record<string, number> = {};
    for (const [index, id] of ['a', 'b', 'c'].entries()) {
      dueTimes[id] = Date.now() + 40 * (index + 1);
      t.add(claimOf(mission(id)), dueTimes[id]);
    }
    t.signal('due');
    while (!started.c) await sleep(2);
    for (const id of ['a', 'b', 'c']) expect(started[id]! - dueTimes[id]!).toBeLessThan(100);
    expect(dispatcher.inFlight).toBe(1);
    expect(await dispatcher.stop({ timeoutMs: 10 })).toBe(false);
    expect(t.released).toContainEqual({ id: 'hangs', retryAfterMs: undefined });
  });

  it('holds a failed mission for retryAfterMs instead of retrying it at once', async () => {
    const t = timedStore([{ claim: claimOf(mission('fails')), dueAt: 0 }]);
    const dispatcher = createDispatcher(
      continuousPorts(t.store, async () => ({ ok: false, reason: 'llm-error: server', usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0 } })),
      { retryAfterMs: 45_000 },
    );
    await dispatcher.start();
    while (t.released.length === 0) await sleep(2);
    await dispatcher.stop();
    expect(t.released).toEqual([{ id: 'fails', retryAfterMs: 45_000 }]);
  });

  it('refreshes on a changes signal and, without notifications, when the probe finds new rows', async () => {
    const notifying = timedStore([]);
    const d1 = createDispatcher(continuousPorts(notifying.store, okPlan), { maxSleepMs: 60_000, probeEveryMs: 10 });
    await d1.start();
    while (notifying.refreshes < 1) await sleep(2);
    notifying.signal('changes');
    while (notifying.refreshes < 2) await sleep(2);
    await sleep(40);
    await d1.stop();
    expect(notifying.probes).toBe(0);
    expect(notifying.refreshes).toBe(2);

    const polling = timedStore([], { notifying: false });
    const d2 = createDispatcher(continuousPorts(polling.store, okPlan), { maxSleepMs: 60_000, probeEveryMs: 10 });
    await d2.start();
    while (polling.refreshes < 1) await sleep(2);
    await sleep(40);
    expect(polling.refreshes).toBe(1);
    polling.markPendingChanges();
    while (polling.refreshes < 2) await sleep(2);
    await d2.stop();
    expect(polling.probes).toBeGreaterThan(1);
  });

  it('with live signals, only probes for missed rows when the longest sleep runs out, and claims what is due', async () => {
    const t = timedStore([]);
    const dispatcher = createDispatcher(continuousPorts(t.store, okPlan), { maxSleepMs: 20 });
    await dispatcher.start();
    while (t.probes < 3) await sleep(2);
    // Start: one refresh and one claim; the safety wakes after it: a probe each, nothing else.
    expect(t.refreshes).toBe(1);
    expect(t.claims).toBe(1);
    t.markPendingChanges();
    while (t.refreshes < 2) await sleep(2);
    // A mission the signals never announced is still claimed by a safety wake once due.
    t.add(claimOf(mission('unannounced')), Date.now());
    while (!t.claimedAt.has('unannounced')) await sleep(2);
    await dispatcher.stop();
  });

  it('backs off its retries while claims fail and claims at once when the database is back', async () => {
    const t = timedStore([]);
    const attempts: number[] = [];
    let failing = true;
    const claimDue = t.store.claimDue;
    t.store.claimDue = async (request: { limit: number }) => {
      attempts.push(Date.now());
      if (failing) throw new Error('connection refused');
      return claimDue(request);
    };
    const dispatcher = createDispatcher(continuousPorts(t.store, okPlan), { heldBackRetryMs: 20, maxSleepMs: 60_000 });
    await dispatcher.start();
    while (attempts.length < 5) await sleep(5);
    const gaps = attempts.slice(1).map((at, index) => at - attempts[index]!);
    // 20, 40, 80, 160 ms: each retry waits about twice as long as the one before.
    expect(gaps[3]!).toBeGreaterThan(gaps[0]! * 4);
    failing = false;
    t.add(claimOf(mission('after-outage')), 0);
    while (!t.claimedAt.has('after-outage')) await sleep(5);
    await dispatcher.stop();
  });

  it('answers a pass with the stats of the missions it claimed while dispatching continuously', async () => {
    const t = timedStore([]);
    const dispatcher = createDispatcher(continuousPorts(t.store, okPlan), { maxSleepMs: 60_000 });
    await dispatcher.start();
    t.add(claimOf(mission('m-1')), 0);
    t.add(claimOf(mission('m-2')), 0);
    const stats = await dispatcher.runPass();
    await dispatcher.stop();
    expect(stats).toMatchObject({ dueMissionCount: 2, plansProduced: 2, plansWrittenBack: 2, errors: [] });
  });
});

import { describe, expect, it } from 'vitest';
import { createManualClock } from './clock.js';
import type { Agent, Mission, ResolvedInput } from './domain.js';
import { createEventBus } from './events.js';
import {
  type MissionClaim,
  type PlanOutcome,
  type ResearchOutcome,
  type TickEvents,
  type TickPorts,
  type WriteBackRequest,
  runTick,
} from './tick.js';

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
  const bus = createEventBus<TickEvents>();
  bus.onAny((name, payload) => events.push([String(name), payload]));
  const ports: TickPorts = {
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
      async release(claim) {
        released.push(claim.mission.id);
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

describe('runTick', () => {
  it('plans each claimed mission and writes an iteration attributed to its agent', async () => {
    const h = harness([claimOf(mission('m-1')), claimOf(mission('m-2'))]);
    const stats = await runTick(h.ports, { concurrency: 2 });
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
    await runTick(h.ports);
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
    const stats = await runTick(h.ports);
    expect(stats.skipped).toEqual({ 'agent-archived': 1, 'agent-paused': 1, 'agent-budget': 2 });
    expect(stats.plansProduced).toBe(0);
    expect(h.resolvedFor).toEqual([]);
    expect(h.released.sort()).toEqual(['archived', 'budget', 'paused', 'zero']);
    const decisions = h.events.filter(([name]) => name === 'agent.decision').map(([, p]) => (p as { decision: string }).decision);
    expect(decisions.sort()).toEqual(['skipped-archived', 'skipped-budget', 'skipped-budget', 'skipped-paused']);
  });

  it('skips a mission whose title or objective is still ciphertext without resolving inputs', async () => {
    const h = harness([claimOf(mission('enc', { objective: 'enc:1:abc.def' })), claimOf(mission('ok'))]);
    const stats = await runTick(h.ports);
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
    const stats = await runTick(h.ports);
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
    const stats = await runTick(h.ports, { concurrency: 1 });
    expect(stats.errors).toEqual(['mission=broken: resolver exploded']);
    expect(stats.plansWrittenBack).toBe(2);
    expect(h.released).toEqual(['broken']);
    expect(h.events.find(([name]) => name === 'mission.error')?.[1]).toEqual({
      missionId: 'broken',
      userId: 'u-1',
      stage: 'inputs',
      message: 'resolver exploded',
    });
  });

  it('counts a failed planner loop, records its tokens against the budget and releases the lease', async () => {
    const h = harness([claimOf(mission('m-1'))], {
      plan: async () => ({ ok: false, reason: 'timeout', usage: { promptTokens: 50, completionTokens: 0, totalTokens: 50 } }),
    });
    const stats = await runTick(h.ports);
    expect(stats.parseFailures).toBe(1);
    expect(stats.plansProduced).toBe(0);
    expect(h.usage).toEqual([{ agentId: 'a-1', tokens: 50 }]);
    expect(h.released).toEqual(['m-1']);
    expect(h.written).toEqual([]);
  });

  it('runs each mission at most once per tick when skipped and failed missions stay due after release', async () => {
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
    const stats = await runTick(h.ports, { concurrency: 1, claimBatchSize: 1 });
    expect(stats).toMatchObject({ dueMissionCount: 4, plansProduced: 1, parseFailures: 1, skipped: { 'ciphertext-mission': 1, 'agent-paused': 1 } });
    expect(planned.sort()).toEqual(['fails', 'ok']);
    expect(h.released.sort()).toEqual(['fails', 'paused', 'sealed']);
  });

  it('claims nothing more, hands the planner the signal and releases the leases when the tick is abandoned', async () => {
    const controller = new AbortController();
    const signals: Array<AbortSignal | undefined> = [];
    const claims = ['m-1', 'm-2', 'm-3', 'm-4'].map((id) => claimOf(mission(id)));
    const h = harness(claims, {});
    const plan = h.ports.planner.plan;
    h.ports.planner.plan = async (request) => {
      signals.push(request.signal);
      controller.abort(new Error('shutdown'));
      return plan(request);
    };
    const stats = await runTick(h.ports, { concurrency: 1, claimBatchSize: 2, signal: controller.signal });
    // The plan's own signal, aborted together with the tick's.
    expect(signals).toHaveLength(1);
    expect(signals[0]?.aborted).toBe(true);
    expect(signals[0]?.reason).toBe(controller.signal.reason);
    expect(stats.dueMissionCount).toBe(2);
    expect(stats.plansWrittenBack).toBe(1);
    expect(stats.errors).toEqual(['mission=m-2: shutdown']);
    expect(h.released).toEqual(['m-2']);
  });

  it('renews the leases of queued and running missions while a slow plan runs, never of finished ones', async () => {
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
    const tick = runTick(h.ports, { concurrency: 2, claimBatchSize: 3, renewEveryMs: 10 });
    await new Promise((resolve) => setTimeout(resolve, 80));
    gate.open();
    const stats = await tick;
    const beatsAtEnd = renewed.length;
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(stats.plansWrittenBack).toBe(3);
    expect(beatsAtEnd).toBeGreaterThanOrEqual(2);
    expect(renewed.length).toBe(beatsAtEnd);
    // 'quick' and 'queued' finished within a few ms; afterwards only the slow mission is renewed.
    expect(renewed.at(-1)).toEqual(['slow']);
    expect(renewed.every((ids) => ids.includes('slow'))).toBe(true);
    expect(h.events.filter(([name]) => name === 'leases.renewed').at(-1)).toEqual(['leases.renewed', { requested: 1, held: 1, lost: 0 }]);
  });

  it('keeps renewing skipped and failed missions until the tick hands them back, and stops beating once aborted', async () => {
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
    const controller = new AbortController();
    const tick = runTick(h.ports, { concurrency: 3, renewEveryMs: 10, signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 60));
    // 'fails' and 'paused' finished long ago and still hold their leases, renewed, like 'slow'.
    expect(renewed.at(-1)).toEqual(['fails', 'paused', 'slow']);
    expect(h.released).toEqual([]);
    controller.abort(new Error('shutdown'));
    const beatsAtAbort = renewed.length;
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(renewed.length).toBe(beatsAtAbort);
    slowGate.open();
    await tick;
    // The slow plan ignored the signal and was written; the other two are handed back at the end.
    expect(h.written.map((w) => w.claim.mission.id)).toEqual(['slow']);
    expect(h.released.sort()).toEqual(['fails', 'paused']);
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
    const tick = runTick(h.ports, { concurrency: 2, renewEveryMs: 10 });
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
    const tick = runTick(h.ports, { renewEveryMs: 10, maxLeaseHoldMs: 60_000 });
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

  it('aborts every plan in flight with the tick and puts one listener on the tick signal, whatever the concurrency', async () => {
    const controller = new AbortController();
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => {
      warnings.push(warning);
    };
    process.on('warning', onWarning);
    const added: unknown[] = [];
    const addEventListener = controller.signal.addEventListener.bind(controller.signal);
    controller.signal.addEventListener = ((type: string, listener: EventListener, opts?: AddEventListenerOptions) => {
      added.push(type);
      addEventListener(type, listener, opts);
    }) as typeof controller.signal.addEventListener;
    const claims = Array.from({ length: 32 }, (_, i) => claimOf(mission(`m-${i}`)));
    const h = harness(claims);
    let started = 0;
    h.ports.planner.plan = (request) =>
      new Promise((_, reject) => {
        // Like the LLM adapter: one abort listener per call in flight.
        request.signal?.addEventListener('abort', () => reject(request.signal?.reason), { once: true });
        started += 1;
        if (started === 32) controller.abort(new Error('shutdown'));
      });
    const stats = await runTick(h.ports, { concurrency: 32, signal: controller.signal });
    await new Promise((resolve) => setImmediate(resolve));
    process.off('warning', onWarning);
    expect(started).toBe(32);
    expect(stats.errors).toHaveLength(32);
    expect(stats.errors.every((error) => error.endsWith(': shutdown'))).toBe(true);
    expect(added).toEqual(['abort']);
    expect(warnings.filter((warning) => warning.name === 'MaxListenersExceededWarning')).toEqual([]);
  });

  it('plans up to the concurrency bound in parallel and never more', async () => {
    const claims = Array.from({ length: 20 }, (_, i) => claimOf(mission(`m-${i}`)));
    const h = harness(claims);
    const stats = await runTick(h.ports, { concurrency: 4, claimBatchSize: 3 });
    expect(stats.plansWrittenBack).toBe(20);
    expect(h.maxInFlight()).toBe(4);
    expect(h.claimCalls.every((limit) => limit <= 3)).toBe(true);
  });

  it('stops claiming at the per-tick bound', async () => {
    const h = harness(Array.from({ length: 10 }, (_, i) => claimOf(mission(`m-${i}`))));
    const stats = await runTick(h.ports, { concurrency: 2, maxMissionsPerTick: 5 });
    expect(stats.dueMissionCount).toBe(5);
    expect(stats.plansWrittenBack).toBe(5);
  });

  it('ends the tick with an error and claims nothing when the refresh fails', async () => {
    const h = harness([claimOf(mission('m-1'))], { refreshFails: true });
    const stats = await runTick(h.ports);
    expect(stats.errors).toEqual(['refresh: connection refused']);
    expect(h.claimCalls).toEqual([]);
    expect(h.events.map(([name]) => name)).toEqual(['tick.started', 'tick.failed', 'tick.finished']);
  });

  it('emits no user text in any event payload', async () => {
    const h = harness([claimOf(mission('m-1', { title: 'Geheimer Titel', objective: 'Geheimes Ziel' }))]);
    await runTick(h.ports);
    const serialised = JSON.stringify(h.events);
    expect(serialised).not.toContain('Geheim');
    expect(h.events.map(([name]) => name)).toEqual(
      expect.arrayContaining(['tick.started', 'tick.refreshed', 'mission.claimed', 'mission.planned', 'mission.written', 'agent.decision', 'tick.finished']),
    );
  });
});

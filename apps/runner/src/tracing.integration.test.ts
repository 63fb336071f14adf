import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  DEFAULT_AGENT_ID,
  type EventBus,
  type Logger,
  type ManualClock,
  type RunIds,
  type TickStats,
  createEventBus,
  createManualClock,
} from '@mana-ai/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SPAN_NAMES, type TracedEvents, type Tracing, createTracing, filterSpanAttributes } from './tracing.js';

const SENTINEL = 'SENTINEL secret objective: call Dr. Müller about the biopsy';
const START = '2026-04-15T12:00:00.000Z';
const USER = '5b1f3c1e-0000-4000-8000-000000000001';
const AGENT = '7a0d6a3e-0000-4000-8000-000000000002';
const PLANNED = '11111111-1111-4111-8111-111111111111';
const SKIPPED = '22222222-2222-4222-8222-222222222222';
const ERRORING = '33333333-3333-4333-8333-333333333333';
const PLAN_FAILED = '44444444-4444-4444-8444-444444444444';
const OTHER = '55555555-5555-4555-8555-555555555555';
const ITERATION = 'it-1111-2026-04-15';
const PREFIX = 'a1b2c3d4';
const PASS = `${PREFIX}-pass-1`;

interface ExportRequest {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  raw: string;
}

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: Record<string, unknown>;
  status: { code?: number; message?: string };
  events?: Array<{ name: string; attributes?: OtlpAttribute[] }>;
}

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
}

/** A real OTLP/HTTP JSON receiver on an ephemeral port. */
function startReceiver(): Promise<{ server: Server; endpoint: string; requests: ExportRequest[] }> {
  const requests: ExportRequest[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      requests.push({ path: request.url ?? '', headers: request.headers, raw: Buffer.concat(chunks).toString('utf8') });
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end('{}');
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({ server, endpoint: `http://127.0.0.1:${port}`, requests });
    });
  });
}

function decodeAttributes(attributes: OtlpAttribute[] | undefined): Record<string, unknown> {
  const decoded: Record<string, unknown> = {};
  for (const { key, value } of attributes ?? []) {
    if (value.stringValue !== undefined) decoded[key] = value.stringValue;
    else if (value.intValue !== undefined) decoded[key] = Number(value.intValue);
    else if (value.boolValue !== undefined) decoded[key] = value.boolValue;
    else if (value.doubleValue !== undefined) decoded[key] = value.doubleValue;
  }
  return decoded;
}

interface OtlpBody {
  resourceSpans: Array<{
    resource: { attributes: OtlpAttribute[] };
    scopeSpans: Array<{ scope: { name: string; version?: string }; spans: Array<Omit<ExportedSpan, 'attributes'> & { attributes?: OtlpAttribute[] }> }>;
  }>;
}

function spansOf(requests: ExportRequest[]): ExportedSpan[] {
  return requests.flatMap((request) =>
    (JSON.parse(request.raw) as OtlpBody).resourceSpans.flatMap((resourceSpans) =>
      resourceSpans.scopeSpans.flatMap((scope) =>
        scope.spans.map((span) => ({ ...span, attributes: decodeAttributes(span.attributes), status: span.status ?? {} })),
      ),
    ),
  );
}

function resourcesOf(requests: ExportRequest[]): Array<Record<string, unknown>> {
  return requests.flatMap((request) =>
    (JSON.parse(request.raw) as OtlpBody).resourceSpans.map((resourceSpans) => decodeAttributes(resourceSpans.resource.attributes)),
  );
}

function capturingLogger(): Logger & { lines: Array<{ level: string; context: unknown; message: unknown }> } {
  const lines: Array<{ level: string; context: unknown; message: unknown }> = [];
  const method =
    (level: string) =>
    (context: unknown, message?: unknown): void => {
      lines.push({ level, context, message });
    };
  const logger = {
    lines,
    trace: method('trace'),
    debug: method('debug'),
    info: method('info'),
    warn: method('warn'),
    error: method('error'),
    fatal: method('fatal'),
    child: () => logger,
  };
  return logger;
}

type Bus = EventBus<TracedEvents>;

/** A typed bus that counts subscriptions (to prove the disabled path subscribes nothing) and rethrows listener errors. */
function countingBus(): Bus & { subscriptions: () => number } {
  const bus = createEventBus<TracedEvents>({
    onListenerError: (error) => {
      throw error;
    },
  });
  let subscriptions = 0;
  return {
    on: (name, listener) => {
      subscriptions += 1;
      const off = bus.on(name, listener);
      return () => {
        subscriptions -= 1;
        off();
      };
    },
    onAny: (listener) => {
      subscriptions += 1;
      const off = bus.onAny(listener);
      return () => {
        subscriptions -= 1;
        off();
      };
    },
    emit: (name, payload) => bus.emit(name, payload),
    subscriptions: () => subscriptions,
  };
}

function statsAt(scannedAt: string, overrides: Partial<TickStats> = {}): TickStats {
  return { scannedAt, dueMissionCount: 0, plansProduced: 0, plansWrittenBack: 0, parseFailures: 0, errors: [], skipped: {}, ...overrides };
}

/** The ids of run `sequence` of this instance (the dispatcher's `<prefix>-<n>` shape). */
function idsOf(missionId: string, sequence: number, agentId: string | null = AGENT): RunIds {
  return { runId: `${PREFIX}-${sequence}`, missionId, userId: USER, agentId };
}

interface PlannedRunOptions {
  passId?: string | null;
  rounds?: number;
  iterationId?: string;
  /** False: the iteration already existed (a retried write). */
  written?: boolean;
}

/**
 * The events of one run that plans in `rounds` LLM calls and writes its iteration, as the dispatcher,
 * planner and projection emit them: one function per step, so that runs can be interleaved.
 */
function plannedRun(events: Bus, clock: ManualClock, ids: RunIds, options: PlannedRunOptions = {}): Array<() => void> {
  const { passId = null, rounds = 2, iterationId = ITERATION, written = true } = options;
  const context = { runId: ids.runId, missionId: ids.missionId, ...(ids.agentId ? { agentId: ids.agentId } : {}) };
  let tokens = 0;
  const steps: Array<() => void> = [() => events.emit('mission.claimed', { ...ids, passId })];
  for (let round = 1; round <= rounds; round += 1) {
    steps.push(() =>
      events.emit('planner.llm-call.started', { context, purpose: 'plan', round, model: 'gemini-2.5-flash', messageCount: 2 + round, toolCount: 5 }),
    );
    steps.push(() => {
      clock.advance(100);
      const last = round === rounds;
      tokens += 300 + 40 * round;
      events.emit('planner.llm-call.finished', {
        context,
        purpose: 'plan',
        round,
        model: 'gemini-2.5-flash',
        durationMs: 100,
        usage: { promptTokens: 300, completionTokens: 40 * round, totalTokens: 300 + 40 * round },
        finishReason: last ? 'stop' : 'tool_calls',
        toolCallCount: last ? 0 : 1,
      });
      if (!last) events.emit('planner.tool-call.recorded', { context, round, tool: 'create_task', module: 'todo', policy: 'propose' });
    });
  }
  steps.push(() =>
    events.emit('planner.run.finished', {
      context,
      rounds,
      stopReason: 'assistant-stop',
      recordedCalls: rounds - 1,
      rejectedCalls: 0,
      usage: { promptTokens: 300 * rounds, completionTokens: tokens - 300 * rounds, totalTokens: tokens },
      durationMs: 100 * rounds,
    }),
  );
  steps.push(() => events.emit('mission.planned', { ...ids, steps: rounds - 1, rounds, tokens }));
  steps.push(() => {
    clock.advance(5);
    const { userId, missionId } = ids;
    events.emit('iteration.written', { userId, missionId, iterationId, duplicate: !written, nextRunAt: '2026-04-16T06:00:00.000Z', nextRunAtWritten: written, steps: rounds - 1 });
    events.emit('tokens.used', { agentId: ids.agentId ?? DEFAULT_AGENT_ID, userId, tokens });
    events.emit('mission.written', { ...ids, iterationId, written });
  });
  steps.push(() => events.emit('mission.finished', { ...ids, outcome: 'written', durationMs: 100 * rounds + 5 }));
  return steps;
}

/**
 * Emits a realistic pass: a refresh, then four claimed runs: one planned in two LLM calls and
 * written, one skipped, one failing on its inputs, one whose LLM call fails.
 */
function emitRealisticPass(events: Bus, clock: ManualClock): void {
  const step = (ms = 10) => clock.advance(ms);
  const planned = idsOf(PLANNED, 2);
  const skipped = idsOf(SKIPPED, 3);
  const erroring = idsOf(ERRORING, 4, null);
  const planFailed = idsOf(PLAN_FAILED, 5, null);
  events.emit('tick.started', { passId: PASS, scannedAt: START });
  step();
  events.emit('tick.refreshed', { rowsApplied: 7, newSnapshots: 2, updatedSnapshots: 3 });
  step();
  const plannedSteps = plannedRun(events, clock, planned, { passId: PASS });
  plannedSteps.shift()?.();
  for (const ids of [skipped, erroring, planFailed]) events.emit('mission.claimed', { ...ids, passId: PASS });
  step();
  events.emit('mission.skipped', { ...skipped, reason: 'agent-paused' });
  events.emit('agent.decision', { agentId: AGENT, decision: 'skipped-paused' });
  events.emit('mission.finished', { ...skipped, outcome: 'skipped', durationMs: 10 });
  events.emit('mission.error', { ...erroring, stage: 'inputs', message: SENTINEL });
  events.emit('mission.finished', { ...erroring, outcome: 'error', durationMs: 10 });
  step();
  for (const next of plannedSteps) next();
  step();
  const failing = { runId: planFailed.runId, missionId: PLAN_FAILED };
  events.emit('planner.llm-call.started', { context: failing, purpose: 'plan', round: 1, model: 'gemini-2.5-flash', messageCount: 2, toolCount: 3 });
  step(50);
  events.emit('planner.provider-error', { context: failing, purpose: 'plan', round: 1, provider: 'mana', kind: 'server', status: 503, attempts: 3, durationMs: 50 });
  events.emit('mission.plan-failed', { ...planFailed, reason: `llm-error: ${SENTINEL}`, tokens: 0 });
  events.emit('mission.finished', { ...planFailed, outcome: 'plan-failed', durationMs: 300 });
  step();
  events.emit('tick.finished', {
    passId: PASS,
    stats: statsAt(START, {
      dueMissionCount: 4,
      plansProduced: 1,
      plansWrittenBack: 1,
      parseFailures: 1,
      errors: [`mission=${ERRORING}: ${SENTINEL}`],
      skipped: { 'agent-paused': 1 },
    }),
    durationMs: clock.now() - Date.parse(START),
  });
}

/** Runs the steps of several runs alternately: one step of each in turn. */
function interleave(...runs: Array<Array<() => void>>): void {
  for (let index = 0; runs.some((steps) => index < steps.length); index += 1) {
    for (const steps of runs) steps[index]?.();
  }
}

function byName(spans: ExportedSpan[], name: string): ExportedSpan[] {
  return spans.filter((span) => span.name === name);
}

function missionSpan(spans: ExportedSpan[], missionId: string): ExportedSpan {
  const span = byName(spans, SPAN_NAMES.mission).find((candidate) => candidate.attributes['mission.id'] === missionId);
  if (!span) throw new Error(`no mission span for ${missionId}`);
  return span;
}

const STATUS_OK_OR_UNSET = [undefined, 0, 1];
const STATUS_ERROR = 2;
const KIND_INTERNAL = 1;
const KIND_CLIENT = 3;

describe('createTracing', () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const opened: Tracing[] = [];

  beforeAll(async () => {
    receiver = await startReceiver();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((tracing) => tracing.shutdown()));
    receiver.requests.length = 0;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => receiver.server.close(() => resolve()));
  });

  const open = (
    events: Bus,
    clock: ManualClock,
    options: { nodeEnv?: string; headers?: Record<string, string>; endpoint?: string; shutdownTimeoutMs?: number } = {},
  ) => {
    const logger = capturingLogger();
    const tracing = createTracing(
      { events, logger, clock },
      { endpoint: options.endpoint ?? `${receiver.endpoint}/`, serviceVersion: '1.2.3', ...options },
    );
    opened.push(tracing);
    return { tracing, logger };
  };

  it('exports a tick span with its runs beneath, each with its LLM call and write-back spans, when a pass runs', async () => {
    const events = countingBus();
    const clock = createManualClock(START);
    const { tracing, logger } = open(events, clock, { nodeEnv: 'production' });
    expect(tracing.enabled).toBe(true);
    expect(logger.lines).toEqual([{ level: 'info', context: { endpoint: `${receiver.endpoint}/v1/traces` }, message: 'tracing enabled' }]);

    emitRealisticPass(events, clock);
    // Batched: nothing is exported before the flush at shutdown.
    expect(receiver.requests).toHaveLength(0);
    await tracing.shutdown();

    expect(receiver.requests.length).toBeGreaterThan(0);
    for (const request of receiver.requests) {
      expect(request.path).toBe('/v1/traces');
      expect(request.headers['content-type']).toBe('application/json');
    }
    const spans = spansOf(receiver.requests);
    expect(spans.map((span) => span.name).sort()).toEqual(
      [SPAN_NAMES.tick, ...Array(4).fill(SPAN_NAMES.mission), ...Array(3).fill(SPAN_NAMES.llmCall), SPAN_NAMES.writeBack].sort(),
    );
    for (const resource of resourcesOf(receiver.requests)) {
      expect(resource).toMatchObject({ 'service.name': 'mana-ai', 'service.version': '1.2.3' });
    }

    const [tick] = byName(spans, SPAN_NAMES.tick);
    if (!tick) throw new Error('no tick span');
    expect(tick.parentSpanId ?? '').toBe('');
    expect(tick.kind).toBe(KIND_INTERNAL);
    expect(tick.attributes).toEqual({
      'tick.pass_id': PASS,
      'refresh.rows_applied': 7,
      'refresh.new_snapshots': 2,
      'refresh.updated_snapshots': 3,
      'refresh.skipped': false,
      'tick.due_missions': 4,
      'tick.plans_produced': 1,
      'tick.plans_written': 1,
      'tick.parse_failures': 1,
      'tick.errors': 1,
      'tick.skipped': 1,
      'tick.duration_ms': clock.now() - Date.parse(START),
    });
    expect(STATUS_OK_OR_UNSET).toContain(tick.status.code);
    expect(BigInt(tick.startTimeUnixNano)).toBe(BigInt(Date.parse(START)) * 1_000_000n);
    expect(BigInt(tick.endTimeUnixNano)).toBe(BigInt(clock.now()) * 1_000_000n);
    for (const span of spans) expect(span.traceId).toBe(tick.traceId);
    for (const missionId of [PLANNED, SKIPPED, ERRORING, PLAN_FAILED]) expect(missionSpan(spans, missionId).parentSpanId).toBe(tick.spanId);

    const planned = missionSpan(spans, PLANNED);
    expect(planned.attributes).toEqual({
      'mission.id': PLANNED,
      'mission.run_id': `${PREFIX}-2`,
      'user.id': USER,
      'agent.id': AGENT,
      'mission.steps': 1,
      'mission.rounds': 2,
      'mission.tokens': 720,
      'planner.stop_reason': 'assistant-stop',
      'planner.recorded_calls': 1,
      'planner.rejected_calls': 0,
      'mission.iteration_id': ITERATION,
      'mission.outcome': 'written',
    });
    expect(STATUS_OK_OR_UNSET).toContain(planned.status.code);

    const plannedCalls = byName(spans, SPAN_NAMES.llmCall).filter((span) => span.parentSpanId === planned.spanId);
    expect(plannedCalls.map((span) => span.attributes['llm.round']).sort()).toEqual([1, 2]);
    const firstCall = plannedCalls.find((span) => span.attributes['llm.round'] === 1);
    expect(firstCall?.kind).toBe(KIND_CLIENT);
    expect(firstCall?.attributes).toEqual({
      'mission.id': PLANNED,
      'mission.run_id': `${PREFIX}-2`,
      'agent.id': AGENT,
      'llm.purpose': 'plan',
      'llm.round': 1,
      'gen_ai.request.model': 'gemini-2.5-flash',
      'llm.message_count': 3,
      'llm.tool_count': 5,
      'llm.duration_ms': 100,
      'gen_ai.response.finish_reason': 'tool_calls',
      'llm.tool_call_count': 1,
      'gen_ai.usage.input_tokens': 300,
      'gen_ai.usage.output_tokens': 40,
      'llm.total_tokens': 340,
    });
    expect(BigInt(firstCall?.endTimeUnixNano ?? 0) - BigInt(firstCall?.startTimeUnixNano ?? 0)).toBe(100n * 1_000_000n);

    const [writeBack] = byName(spans, SPAN_NAMES.writeBack);
    expect(writeBack?.parentSpanId).toBe(planned.spanId);
    expect(writeBack?.attributes).toEqual({
      'mission.id': PLANNED,
      'mission.run_id': `${PREFIX}-2`,
      'user.id': USER,
      'write_back.steps': 1,
      'mission.iteration_id': ITERATION,
      'write_back.duplicate': false,
      'write_back.written': true,
    });
    expect(STATUS_OK_OR_UNSET).toContain(writeBack?.status.code);
    // The write-back ends with mission.written, before its run's span.
    expect(BigInt(writeBack?.endTimeUnixNano ?? 0)).toBeLessThanOrEqual(BigInt(planned.endTimeUnixNano));

    const skipped = missionSpan(spans, SKIPPED);
    expect(skipped.attributes).toMatchObject({ 'mission.outcome': 'skipped', 'mission.skip_reason': 'agent-paused' });
    expect(STATUS_OK_OR_UNSET).toContain(skipped.status.code);

    const erroring = missionSpan(spans, ERRORING);
    expect(erroring.attributes).toEqual({
      'mission.id': ERRORING,
      'mission.run_id': `${PREFIX}-4`,
      'user.id': USER,
      'mission.error_stage': 'inputs',
      'mission.outcome': 'error',
    });
    expect(erroring.status).toEqual({ code: STATUS_ERROR, message: 'mission failed in stage inputs' });

    const planFailed = missionSpan(spans, PLAN_FAILED);
    expect(planFailed.attributes).toMatchObject({ 'mission.outcome': 'plan-failed', 'mission.tokens': 0 });
    expect(planFailed.status).toEqual({ code: STATUS_ERROR, message: 'planner loop failed' });
    const failedCalls = byName(spans, SPAN_NAMES.llmCall).filter((span) => span.parentSpanId === planFailed.spanId);
    expect(failedCalls).toHaveLength(1);
    expect(failedCalls[0]?.attributes).toMatchObject({
      'llm.provider': 'mana',
      'error.type': 'server',
      'http.response.status_code': 503,
      'llm.attempts': 3,
    });
    expect(failedCalls[0]?.status).toEqual({ code: STATUS_ERROR, message: 'provider error: server' });

    expect(events.subscriptions()).toBe(0);
  });

  it('puts each LLM call and write-back under its own run when two runs of the continuous dispatcher interleave', async () => {
    const events = countingBus();
    const clock = createManualClock(START);
    const { tracing } = open(events, clock);
    const first = idsOf(PLANNED, 7);
    const second = idsOf(OTHER, 8, null);
    interleave(
      plannedRun(events, clock, first, { rounds: 2, iterationId: 'it-first' }),
      plannedRun(events, clock, second, { rounds: 3, iterationId: 'it-second', written: false }),
    );
    await tracing.shutdown();

    const spans = spansOf(receiver.requests);
    expect(byName(spans, SPAN_NAMES.tick)).toHaveLength(0);
    expect(spans).toHaveLength(2 + 5 + 2);
    const firstRun = missionSpan(spans, PLANNED);
    const secondRun = missionSpan(spans, OTHER);
    // Runs of the continuous dispatcher are traces of their own.
    expect(firstRun.parentSpanId ?? '').toBe('');
    expect(secondRun.parentSpanId ?? '').toBe('');
    expect(firstRun.traceId).not.toBe(secondRun.traceId);
    const children = (run: ExportedSpan, name: string) => spans.filter((span) => span.name === name && span.parentSpanId === run.spanId);

    const firstCalls = children(firstRun, SPAN_NAMES.llmCall);
    expect(firstCalls.map((span) => span.attributes['llm.round']).sort()).toEqual([1, 2]);
    const secondCalls = children(secondRun, SPAN_NAMES.llmCall);
    expect(secondCalls.map((span) => span.attributes['llm.round']).sort()).toEqual([1, 2, 3]);
    for (const call of firstCalls) expect(call.attributes).toMatchObject({ 'mission.id': PLANNED, 'mission.run_id': first.runId, 'agent.id': AGENT });
    for (const call of secondCalls) {
      expect(call.attributes).toMatchObject({ 'mission.id': OTHER, 'mission.run_id': second.runId });
      expect(call.attributes['agent.id']).toBeUndefined();
    }
    for (const call of [...firstCalls, ...secondCalls]) expect(BigInt(call.endTimeUnixNano) > BigInt(call.startTimeUnixNano)).toBe(true);

    expect(children(firstRun, SPAN_NAMES.writeBack).map((span) => span.attributes)).toEqual([
      expect.objectContaining({ 'mission.iteration_id': 'it-first', 'write_back.duplicate': false, 'write_back.written': true }),
    ]);
    expect(children(secondRun, SPAN_NAMES.writeBack).map((span) => span.attributes)).toEqual([
      expect.objectContaining({ 'mission.iteration_id': 'it-second', 'write_back.duplicate': true, 'write_back.written': false }),
    ]);
    expect(firstRun.attributes).toMatchObject({ 'mission.outcome': 'written', 'mission.rounds': 2, 'mission.iteration_id': 'it-first' });
    expect(secondRun.attributes).toMatchObject({ 'mission.outcome': 'duplicate', 'mission.rounds': 3, 'mission.iteration_id': 'it-second' });
    for (const span of spans) expect(STATUS_OK_OR_UNSET).toContain(span.status.code);
  });

  it('records no LLM call span when its events carry no run id or the id of a run that already ended', async () => {
    const events = countingBus();
    const clock = createManualClock(START);
    const { tracing } = open(events, clock);
    const ended = idsOf(PLANNED, 1);
    const endedContext = { runId: ended.runId, missionId: PLANNED, agentId: AGENT };
    events.emit('mission.claimed', { ...ended, passId: null });
    events.emit('planner.llm-call.started', { context: endedContext, purpose: 'plan', round: 1, model: 'm', messageCount: 2, toolCount: 1 });
    clock.advance(20);
    events.emit('mission.error', { ...ended, stage: 'plan', message: SENTINEL });
    events.emit('mission.finished', { ...ended, outcome: 'error', durationMs: 20 });

    // The next run of the same mission; the ended run's planner is still talking (an ignored abort).
    const next = idsOf(PLANNED, 2);
    const steps = plannedRun(events, clock, next, { rounds: 1 });
    const finish = steps.pop();
    for (const step of steps) step();
    events.emit('planner.llm-call.finished', {
      context: endedContext,
      purpose: 'plan',
      round: 1,
      model: 'm',
      durationMs: 30,
      usage: undefined,
      finishReason: 'stop',
      toolCallCount: 0,
    });
    events.emit('planner.llm-call.started', { context: endedContext, purpose: 'plan', round: 2, model: 'm', messageCount: 4, toolCount: 1 });
    events.emit('planner.provider-error', { context: endedContext, purpose: 'plan', round: 2, provider: 'mana', kind: 'timeout', status: undefined, attempts: 1, durationMs: 5 });
    events.emit('planner.run.finished', {
      context: endedContext,
      rounds: 2,
      stopReason: 'llm-error',
      recordedCalls: 0,
      rejectedCalls: 3,
      usage: { promptTokens: 1, completionTokens: 1, totalTokens: 2 },
      durationMs: 50,
    });
    // A call without a run id (a caller that attached none) has no run to hang under.
    events.emit('planner.llm-call.started', { context: { missionId: PLANNED }, purpose: 'compaction', round: 1, model: 'm', messageCount: 9, toolCount: 0 });
    events.emit('planner.llm-call.finished', {
      context: { missionId: PLANNED },
      purpose: 'compaction',
      round: 1,
      model: 'm',
      durationMs: 1,
      usage: undefined,
      finishReason: 'stop',
      toolCallCount: 0,
    });
    // Late events of the ended run change nothing.
    events.emit('mission.written', { ...ended, iterationId: 'it-late', written: true });
    events.emit('mission.finished', { ...ended, outcome: 'written', durationMs: 99 });
    finish?.();
    await tracing.shutdown();

    const spans = spansOf(receiver.requests);
    const runs = byName(spans, SPAN_NAMES.mission);
    expect(runs).toHaveLength(2);
    const endedRun = runs.find((span) => span.attributes['mission.run_id'] === ended.runId);
    const nextRun = runs.find((span) => span.attributes['mission.run_id'] === next.runId);
    if (!endedRun || !nextRun) throw new Error('missing run span');
    expect(endedRun.attributes).toMatchObject({ 'mission.outcome': 'error', 'mission.error_stage': 'plan' });
    expect(endedRun.attributes['mission.iteration_id']).toBeUndefined();
    expect(endedRun.status).toEqual({ code: STATUS_ERROR, message: 'mission failed in stage plan' });
    expect(nextRun.attributes).toMatchObject({ 'mission.outcome': 'written', 'planner.stop_reason': 'assistant-stop', 'planner.rejected_calls': 0 });

    const calls = byName(spans, SPAN_NAMES.llmCall);
    expect(calls).toHaveLength(2);
    const [endedCall] = calls.filter((span) => span.parentSpanId === endedRun.spanId);
    expect(endedCall?.status).toEqual({ code: STATUS_ERROR, message: 'mission ended before the LLM call finished' });
    expect(endedCall?.attributes['llm.duration_ms']).toBeUndefined();
    const [nextCall] = calls.filter((span) => span.parentSpanId === nextRun.spanId);
    expect(nextCall?.attributes).toMatchObject({ 'mission.run_id': next.runId, 'llm.purpose': 'plan', 'llm.round': 1, 'llm.duration_ms': 100 });
    expect(STATUS_OK_OR_UNSET).toContain(nextCall?.status.code);
  });

  it('never exports user text when payloads carry it in error messages and reasons', async () => {
    const events = countingBus();
    const clock = createManualClock(START);
    const { tracing } = open(events, clock);
    emitRealisticPass(events, clock);
    // A claim failure whose message quotes user text, and payloads with extra text fields.
    clock.advance(1000);
    const scannedAt = new Date(clock.now()).toISOString();
    const passId = `${PREFIX}-pass-9`;
    const ids = idsOf(PLANNED, 10);
    events.emit('tick.started', { passId, scannedAt });
    const claimed = { ...ids, passId, title: SENTINEL, objective: SENTINEL };
    events.emit('mission.claimed', claimed);
    const context = { runId: ids.runId, missionId: PLANNED, prompt: SENTINEL };
    events.emit('planner.llm-call.started', { context, purpose: 'plan', round: 1, model: SENTINEL, messageCount: 1, toolCount: 1 });
    events.emit('tick.failed', { stage: 'claim', message: SENTINEL });
    events.emit('mission.error', { ...ids, stage: 'plan', message: SENTINEL });
    events.emit('mission.finished', { ...ids, outcome: 'error', durationMs: 3 });
    events.emit('tick.finished', { passId, stats: statsAt(scannedAt, { errors: [`claim: ${SENTINEL}`] }), durationMs: 3 });
    await tracing.shutdown();

    const raw = receiver.requests.map((request) => request.raw).join('\n');
    expect(raw.length).toBeGreaterThan(0);
    expect(raw).not.toContain('SENTINEL');
    expect(raw).not.toContain('Müller');
    expect(raw).not.toContain('biopsy');
    const spans = spansOf(receiver.requests);
    const secondTick = byName(spans, SPAN_NAMES.tick).find((span) => span.attributes['tick.pass_id'] === passId);
    expect(secondTick?.attributes['tick.failed_stage']).toBe('claim');
    expect(secondTick?.status).toEqual({ code: STATUS_ERROR, message: 'tick failed in stage claim' });
    // The model name was prose, so it was dropped; the rest of the call is still traced.
    const call = byName(spans, SPAN_NAMES.llmCall).find((span) => span.attributes['mission.run_id'] === ids.runId);
    expect(call?.attributes['llm.message_count']).toBe(1);
    expect(call?.attributes['gen_ai.request.model']).toBeUndefined();
  });

  it('records research steps as events on the open run of their mission, with enums and counts but no user text', async () => {
    const events = countingBus();
    const clock = createManualClock(START);
    const { tracing } = open(events, clock);
    const planned = idsOf(PLANNED, 1);
    const skipped = idsOf(SKIPPED, 2);
    events.emit('mission.claimed', { ...planned, passId: null });
    events.emit('mission.claimed', { ...skipped, passId: null });
    const base = { userId: USER, missionId: PLANNED };
    const shallow = { ...base, reason: 'deep-not-requested' as const, status: 'found' as const, feedCount: 3, articleCount: 7, query: SENTINEL };
    events.emit('research.shallow', shallow);
    const submitFailed = { ...base, provider: 'mana-research', code: 'RESEARCH_HTTP_STATUS' as const, kind: 'http-status' as const, status: 503, message: SENTINEL };
    events.emit('research.submit-failed', submitFailed);
    events.emit('research.pending-skip', { userId: USER, missionId: SKIPPED, provider: 'mana-research', taskId: 'task-42', remoteStatus: 'running', failedPolls: 1 });
    events.emit('mission.skipped', { ...skipped, reason: 'research-pending' });
    events.emit('mission.finished', { ...skipped, outcome: 'skipped', durationMs: 5 });
    // No open run: another instance's mission, another user's mission of the same id, a run that ended.
    events.emit('research.completed', { userId: USER, missionId: 'not-running', provider: 'mana-research', taskId: 'task-7', hasAnswer: true });
    events.emit('research.completed', { userId: 'another-user', missionId: PLANNED, provider: 'mana-research', taskId: 'task-8', hasAnswer: true });
    events.emit('research.consumed', { userId: USER, missionId: SKIPPED, provider: 'mana-research', taskId: 'task-9' });
    events.emit('mission.planned', { ...planned, steps: 1, rounds: 1, tokens: 10 });
    events.emit('mission.written', { ...planned, iterationId: ITERATION, written: true });
    events.emit('research.consumed', { ...base, provider: 'mana-research', taskId: 'task-41' });
    events.emit('mission.finished', { ...planned, outcome: 'written', durationMs: 5 });
    await tracing.shutdown();

    const raw = receiver.requests.map((request) => request.raw).join('\n');
    expect(raw).not.toContain('SENTINEL');
    const spans = spansOf(receiver.requests);
    const eventsOf = (missionId: string) =>
      (missionSpan(spans, missionId).events ?? []).map((event) => ({ name: event.name, attributes: decodeAttributes(event.attributes) }));
    expect(eventsOf(PLANNED)).toEqual([
      {
        name: 'research.shallow',
        attributes: { 'research.reason': 'deep-not-requested', 'research.status': 'found', 'research.feed_count': 3, 'research.article_count': 7 },
      },
      {
        name: 'research.submit-failed',
        attributes: { 'research.provider': 'mana-research', 'research.error_code': 'RESEARCH_HTTP_STATUS', 'research.error_kind': 'http-status', 'http.response.status_code': 503 },
      },
      { name: 'research.consumed', attributes: { 'research.provider': 'mana-research', 'research.task_id': 'task-41' } },
    ]);
    expect(eventsOf(SKIPPED)).toEqual([
      {
        name: 'research.pending-skip',
        attributes: { 'research.provider': 'mana-research', 'research.task_id': 'task-42', 'research.remote_status': 'running', 'research.failed_polls': 1 },
      },
    ]);
    for (const taskId of ['task-7', 'task-8', 'task-9']) expect(raw).not.toContain(taskId);
  });

  it('records refreshes and claim failures on a pass only while it is the one pass open', async () => {
    const events = countingBus();
    const clock = createManualClock(START);
    const { tracing } = open(events, clock);
    const first = `${PREFIX}-pass-1`;
    const second = `${PREFIX}-pass-2`;
    // Outside passes (the continuous dispatcher's own cycles): nothing to record them on.
    events.emit('tick.refreshed', { rowsApplied: 50, newSnapshots: 0, updatedSnapshots: 0 });
    events.emit('tick.failed', { stage: 'refresh', message: SENTINEL });
    events.emit('tick.started', { passId: first, scannedAt: START });
    events.emit('tick.refreshed', { rowsApplied: 1, newSnapshots: 1, updatedSnapshots: 0 });
    events.emit('tick.started', { passId: second, scannedAt: START });
    // Two passes open: whose refresh or claim this was is unknown, so it is not recorded.
    events.emit('tick.refreshed', { rowsApplied: 99, newSnapshots: 9, updatedSnapshots: 9, skipped: true });
    events.emit('tick.failed', { stage: 'claim', message: SENTINEL });
    events.emit('tick.finished', { passId: first, stats: statsAt(START), durationMs: 4 });
    events.emit('tick.refreshed', { rowsApplied: 5, newSnapshots: 0, updatedSnapshots: 2 });
    events.emit('tick.finished', { passId: second, stats: statsAt(START), durationMs: 6 });
    await tracing.shutdown();

    const spans = spansOf(receiver.requests);
    const pass = (passId: string) => byName(spans, SPAN_NAMES.tick).find((span) => span.attributes['tick.pass_id'] === passId);
    expect(pass(first)?.attributes).toMatchObject({ 'refresh.rows_applied': 1, 'refresh.new_snapshots': 1, 'refresh.skipped': false });
    expect(pass(second)?.attributes).toMatchObject({ 'refresh.rows_applied': 5, 'refresh.updated_snapshots': 2, 'refresh.skipped': false });
    expect(pass(second)?.parentSpanId ?? '').toBe('');
    for (const passId of [first, second]) {
      expect(pass(passId)?.attributes['tick.failed_stage']).toBeUndefined();
      expect(STATUS_OK_OR_UNSET).toContain(pass(passId)?.status.code);
    }
  });

  it('exports refresh and claim database spans with counts only, under the one open pass or as their own traces', async () => {
    const events = countingBus();
    const clock = createManualClock(START);
    const { tracing } = open(events, clock);
    const refresh = {
      skipped: false,
      completed: true,
      batches: 2,
      rowsRead: 2600,
      rowsApplied: 2400,
      rowsAlreadyApplied: 100,
      rowsIgnored: 100,
      badRows: 1,
      newSnapshots: 7,
      updatedSnapshots: 9,
      deletedSnapshots: 1,
      usersProcessed: 3,
      cursor: { createdAt: '2026-04-15T11:59:59.123456Z', id: SENTINEL },
      durationMs: 40,
    };
    events.emit('tick.started', { passId: PASS, scannedAt: START });
    clock.advance(50);
    events.emit('refresh.done', refresh);
    clock.advance(5);
    events.emit('missions.claimed', { owner: `host:${SENTINEL}`, limit: 32, claimed: 4, durationMs: 5 });
    events.emit('tick.finished', { passId: PASS, stats: statsAt(START), durationMs: 60 });
    // The continuous dispatcher's cycles: no pass open.
    events.emit('refresh.done', { ...refresh, skipped: true, reason: 'locked', batches: 0, durationMs: 0 });
    events.emit('missions.claimed', { owner: 'runner-a', limit: 8, claimed: 0, durationMs: 2 });
    await tracing.shutdown();

    const spans = spansOf(receiver.requests);
    const pass = byName(spans, SPAN_NAMES.tick)[0]!;
    const refreshes = byName(spans, SPAN_NAMES.refresh);
    const claims = byName(spans, SPAN_NAMES.claim);
    expect(refreshes).toHaveLength(2);
    expect(claims).toHaveLength(2);
    expect(refreshes[0]).toMatchObject({ parentSpanId: pass.spanId, traceId: pass.traceId, kind: 3 });
    expect(refreshes[0]!.attributes).toEqual({
      'db.system': 'postgresql',
      'refresh.skipped': false,
      'refresh.completed': true,
      'refresh.batches': 2,
      'refresh.rows_read': 2600,
      'refresh.rows_applied': 2400,
      'refresh.rows_already_applied': 100,
      'refresh.rows_ignored': 100,
      'refresh.bad_rows': 1,
      'refresh.new_snapshots': 7,
      'refresh.updated_snapshots': 9,
      'refresh.deleted_snapshots': 1,
    });
    // Timed by the event's duration, ending when it arrived.
    const startMs = Date.parse(START);
    expect(BigInt(refreshes[0]!.endTimeUnixNano) - BigInt(refreshes[0]!.startTimeUnixNano)).toBe(40_000_000n);
    expect(BigInt(refreshes[0]!.endTimeUnixNano)).toBe(BigInt(startMs + 50) * 1_000_000n);
    expect(claims[0]).toMatchObject({ parentSpanId: pass.spanId, traceId: pass.traceId });
    expect(claims[0]!.attributes).toEqual({ 'db.system': 'postgresql', 'claim.limit': 32, 'claim.claimed': 4 });
    for (const span of [refreshes[1]!, claims[1]!]) {
      expect(span.parentSpanId ?? '').toBe('');
      expect(span.traceId).not.toBe(pass.traceId);
    }
    expect(refreshes[1]!.attributes).toMatchObject({ 'refresh.skipped': true, 'refresh.batches': 0 });
    expect(receiver.requests.map((request) => request.raw).join('')).not.toContain('SENTINEL');
  });

  it('ends spans left open with status ERROR when their pass finishes', async () => {
    const events = countingBus();
    const clock = createManualClock(START);
    const { tracing } = open(events, clock);
    const calling = idsOf(PLANNED, 2, null);
    const writing = idsOf(SKIPPED, 3, null);
    events.emit('tick.started', { passId: PASS, scannedAt: START });
    events.emit('mission.claimed', { ...calling, passId: PASS });
    events.emit('planner.llm-call.started', { context: { runId: calling.runId }, purpose: 'compaction', round: 2, model: 'm', messageCount: 9, toolCount: 0 });
    events.emit('mission.claimed', { ...writing, passId: PASS });
    events.emit('mission.planned', { ...writing, steps: 1, rounds: 1, tokens: 10 });
    clock.advance(40);
    events.emit('tick.finished', { passId: PASS, stats: statsAt(START), durationMs: 40 });
    // Events of an ended run are ignored rather than reopening anything.
    events.emit('mission.written', { ...writing, iterationId: ITERATION, written: true });
    events.emit('mission.finished', { ...writing, outcome: 'written', durationMs: 41 });
    await tracing.shutdown();

    const spans = spansOf(receiver.requests);
    expect(spans).toHaveLength(5);
    const [tick] = byName(spans, SPAN_NAMES.tick);
    expect(STATUS_OK_OR_UNSET).toContain(tick?.status.code);
    for (const span of spans.filter((candidate) => candidate.name !== SPAN_NAMES.tick)) {
      expect(span.status.code).toBe(STATUS_ERROR);
      expect(BigInt(span.endTimeUnixNano)).toBe(BigInt(clock.now()) * 1_000_000n);
    }
    expect(missionSpan(spans, PLANNED).attributes['mission.outcome']).toBe('unfinished');
    expect(missionSpan(spans, PLANNED).status.message).toBe('pass ended before the mission finished');
    expect(missionSpan(spans, SKIPPED).attributes['mission.iteration_id']).toBeUndefined();
    const [call] = byName(spans, SPAN_NAMES.llmCall);
    expect(call?.parentSpanId).toBe(missionSpan(spans, PLANNED).spanId);
    expect(call?.attributes['llm.purpose']).toBe('compaction');
    const [writeBack] = byName(spans, SPAN_NAMES.writeBack);
    expect(writeBack?.parentSpanId).toBe(missionSpan(spans, SKIPPED).spanId);
  });

  it('ends the oldest span with status ERROR and ignores its late events when too many passes, runs or LLM calls are open', async () => {
    const events = countingBus();
    const clock = createManualClock(START);
    const { tracing } = open(events, clock);
    // Passes: at most 8 open.
    for (let pass = 1; pass <= 9; pass += 1) events.emit('tick.started', { passId: `${PREFIX}-pass-${pass}`, scannedAt: START });
    events.emit('tick.finished', { passId: `${PREFIX}-pass-1`, stats: statsAt(START, { dueMissionCount: 3 }), durationMs: 1 });
    // LLM calls: at most 1,000 open.
    const oldest = idsOf(PLANNED, 1);
    events.emit('mission.claimed', { ...oldest, passId: null });
    for (let round = 1; round <= 1001; round += 1) {
      events.emit('planner.llm-call.started', { context: { runId: oldest.runId }, purpose: 'plan', round, model: 'm', messageCount: 1, toolCount: 0 });
    }
    // Runs: at most 10,000 open; the 10,001st claim evicts the oldest run with its open calls.
    for (let sequence = 2; sequence <= 10_001; sequence += 1) events.emit('mission.claimed', { ...idsOf(`mission-${sequence}`, sequence), passId: null });
    events.emit('planner.llm-call.started', { context: { runId: oldest.runId }, purpose: 'plan', round: 5000, model: 'm', messageCount: 1, toolCount: 0 });
    events.emit('mission.planned', { ...oldest, steps: 1, rounds: 1, tokens: 1 });
    events.emit('mission.finished', { ...oldest, outcome: 'written', durationMs: 1 });
    await tracing.shutdown();

    // The batch processor keeps the first 2048 spans that end: the evicted ones come first.
    const spans = spansOf(receiver.requests);
    const firstPass = byName(spans, SPAN_NAMES.tick).find((span) => span.attributes['tick.pass_id'] === `${PREFIX}-pass-1`);
    expect(firstPass?.status).toEqual({ code: STATUS_ERROR, message: 'evicted: too many open passes' });
    expect(firstPass?.attributes['tick.due_missions']).toBeUndefined();
    const calls = byName(spans, SPAN_NAMES.llmCall);
    expect(calls.find((span) => span.attributes['llm.round'] === 1)?.status).toEqual({ code: STATUS_ERROR, message: 'evicted: too many open LLM calls' });
    expect(calls.find((span) => span.attributes['llm.round'] === 1001)?.status).toEqual({ code: STATUS_ERROR, message: 'mission ended before the LLM call finished' });
    expect(calls).toHaveLength(1001);
    expect(calls.some((span) => span.attributes['llm.round'] === 5000)).toBe(false);
    const evicted = missionSpan(spans, PLANNED);
    expect(evicted.status).toEqual({ code: STATUS_ERROR, message: 'evicted: too many open missions' });
    expect(evicted.attributes['mission.outcome']).toBe('unfinished');
    expect(evicted.attributes['mission.steps']).toBeUndefined();
    expect(byName(spans, SPAN_NAMES.writeBack)).toHaveLength(0);
  });

  it('exports each span as it ends and sends the configured headers when nodeEnv is development', async () => {
    const events = countingBus();
    const clock = createManualClock(START);
    const { tracing } = open(events, clock, { nodeEnv: 'development', endpoint: `${receiver.endpoint}///`, headers: { authorization: 'Bearer otlp-token' } });
    events.emit('tick.started', { passId: PASS, scannedAt: START });
    events.emit('tick.finished', { passId: PASS, stats: statsAt(START), durationMs: 0 });
    await expect.poll(() => receiver.requests.length, { timeout: 5_000 }).toBe(1);
    expect(receiver.requests[0]?.path).toBe('/v1/traces');
    expect(receiver.requests[0]?.headers.authorization).toBe('Bearer otlp-token');
    expect(spansOf(receiver.requests).map((span) => span.name)).toEqual([SPAN_NAMES.tick]);
    await tracing.shutdown();
  });

  it('unsubscribes, ends open spans and stops exporting when shut down', async () => {
    const events = countingBus();
    const clock = createManualClock(START);
    const { tracing } = open(events, clock);
    expect(events.subscriptions()).toBeGreaterThan(0);
    events.emit('tick.started', { passId: PASS, scannedAt: START });
    events.emit('mission.claimed', { ...idsOf(PLANNED, 2, null), passId: PASS });
    events.emit('mission.claimed', { ...idsOf(OTHER, 3, null), passId: null });
    await tracing.shutdown();
    await tracing.shutdown();
    expect(events.subscriptions()).toBe(0);
    const spans = spansOf(receiver.requests);
    expect(spans.map((span) => [span.name, span.status.code]).sort()).toEqual([
      [SPAN_NAMES.mission, STATUS_ERROR],
      [SPAN_NAMES.mission, STATUS_ERROR],
      [SPAN_NAMES.tick, STATUS_ERROR],
    ]);
    const exported = receiver.requests.length;
    emitRealisticPass(events, clock);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(receiver.requests).toHaveLength(exported);
  });

  it('gives up flushing after shutdownTimeoutMs and logs it when the collector never answers', async () => {
    let received = 0;
    const silent = createServer(() => {
      received += 1;
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    const { port } = silent.address() as AddressInfo;
    try {
      const events = countingBus();
      const clock = createManualClock(START);
      const { tracing, logger } = open(events, clock, { endpoint: `http://127.0.0.1:${port}`, shutdownTimeoutMs: 300 });
      emitRealisticPass(events, clock);
      const started = Date.now();
      await tracing.shutdown();
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(received).toBe(1);
      expect(logger.lines.at(-1)).toEqual({ level: 'warn', context: { timeoutMs: 300 }, message: 'tracing flush timed out: spans dropped' });
      expect(events.subscriptions()).toBe(0);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('subscribes nothing, exports nothing and logs once when no endpoint is set', async () => {
    for (const endpoint of [undefined, '  ']) {
      const events = countingBus();
      const clock = createManualClock(START);
      const logger = capturingLogger();
      const tracing = createTracing({ events, logger, clock }, { endpoint, serviceVersion: '1.2.3', nodeEnv: 'development' });
      expect(tracing.enabled).toBe(false);
      expect(events.subscriptions()).toBe(0);
      expect(logger.lines).toEqual([{ level: 'info', context: {}, message: 'tracing disabled (set OTEL_EXPORTER_OTLP_ENDPOINT to enable)' }]);
      emitRealisticPass(events, clock);
      await tracing.shutdown();
      expect(logger.lines).toHaveLength(1);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(receiver.requests).toHaveLength(0);
  });

  it('rejects an endpoint that is not an http(s) URL without echoing it', () => {
    const events = countingBus();
    const logger = capturingLogger();
    for (const endpoint of ['ftp://user:secret@otel-host', 'not a url secret']) {
      expect(() => createTracing({ events, logger }, { endpoint, serviceVersion: '1.2.3' })).toThrow(
        expect.objectContaining({ code: 'RUNNER_CONFIG_INVALID', message: expect.not.stringContaining('secret') }),
      );
    }
    expect(events.subscriptions()).toBe(0);
  });

  it('logs the endpoint without credentials when it carries userinfo', async () => {
    const events = countingBus();
    const { logger } = open(events, createManualClock(START), { endpoint: receiver.endpoint.replace('http://', 'http://user:pass@') });
    expect(JSON.stringify(logger.lines)).not.toContain('pass');
    expect(logger.lines[0]?.context).toEqual({ endpoint: `${receiver.endpoint}/v1/traces` });
  });
});

describe('filterSpanAttributes', () => {
  it('keeps allowlisted ids, counts and enums and drops other keys, prose, objects and non-finite numbers', () => {
    expect(
      filterSpanAttributes({
        'mission.id': PLANNED,
        'mission.steps': 3,
        'write_back.written': true,
        'mission.title': 'Weekly review',
        objective: 'plan',
        'user.id': 'Alice Smith',
        'agent.id': { nested: true },
        'llm.round': Number.NaN,
        'gen_ai.request.model': 'x'.repeat(129),
        'mission.outcome': undefined,
      }),
    ).toEqual({ 'mission.id': PLANNED, 'mission.steps': 3, 'write_back.written': true });
  });
});

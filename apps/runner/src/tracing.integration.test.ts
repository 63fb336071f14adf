import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type EventBus,
  type EventMap,
  type Logger,
  type ManualClock,
  type TickStats,
  createEventBus,
  createManualClock,
} from '@mana-ai/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SPAN_NAMES, type Tracing, createTracing, filterSpanAttributes } from './tracing.js';

const SENTINEL = 'SENTINEL secret objective: call Dr. Müller about the biopsy';
const START = '2026-04-15T12:00:00.000Z';
const USER = '5b1f3c1e-0000-4000-8000-000000000001';
const AGENT = '7a0d6a3e-0000-4000-8000-000000000002';
const PLANNED = '11111111-1111-4111-8111-111111111111';
const SKIPPED = '22222222-2222-4222-8222-222222222222';
const ERRORING = '33333333-3333-4333-8333-333333333333';
const PLAN_FAILED = '44444444-4444-4444-8444-444444444444';
const ITERATION = 'it-1111-2026-04-15';

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

/** A bus that counts subscriptions, to prove the disabled path subscribes nothing. */
function countingBus(): EventBus<EventMap> & { subscriptions: () => number } {
  const bus = createEventBus<EventMap>({
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

/** Emits a realistic tick: one mission planned with two LLM calls, one skipped, one erroring, one failing to plan. */
function emitRealisticTick(events: EventBus<EventMap>, clock: ManualClock): void {
  const step = (ms = 10) => clock.advance(ms);
  events.emit('tick.started', { scannedAt: START });
  step();
  events.emit('tick.refreshed', { rowsApplied: 7, newSnapshots: 2, updatedSnapshots: 3 });
  step();
  events.emit('mission.claimed', { missionId: PLANNED, userId: USER, agentId: AGENT });
  events.emit('mission.claimed', { missionId: SKIPPED, userId: USER, agentId: AGENT });
  events.emit('mission.claimed', { missionId: ERRORING, userId: USER, agentId: null });
  events.emit('mission.claimed', { missionId: PLAN_FAILED, userId: USER, agentId: null });
  step();
  events.emit('mission.skipped', { missionId: SKIPPED, userId: USER, agentId: AGENT, reason: 'agent-paused' });
  events.emit('agent.decision', { agentId: AGENT, decision: 'skipped-paused' });
  events.emit('resolver.failed', { missionId: ERRORING, module: 'notes', error: SENTINEL });
  events.emit('mission.error', { missionId: ERRORING, userId: USER, stage: 'inputs', message: SENTINEL });
  step();
  const context = { missionId: PLANNED, agentId: AGENT };
  for (const round of [1, 2]) {
    events.emit('planner.llm-call.started', { context, purpose: 'plan', round, model: 'gemini-2.5-flash', messageCount: 2 + round, toolCount: 5 });
    step(100);
    events.emit('planner.llm-call.finished', {
      context,
      purpose: 'plan',
      round,
      model: 'gemini-2.5-flash',
      durationMs: 100,
      usage: { promptTokens: 300, completionTokens: 40 * round, totalTokens: 300 + 40 * round },
      finishReason: round === 1 ? 'tool_calls' : 'stop',
      toolCallCount: round === 1 ? 2 : 0,
    });
    events.emit('planner.tool-call.recorded', { context, round, tool: 'create_task', module: 'todo', policy: 'propose' });
    step();
  }
  events.emit('planner.run.finished', {
    context,
    rounds: 2,
    stopReason: 'assistant-stop',
    recordedCalls: 2,
    rejectedCalls: 0,
    usage: { promptTokens: 600, completionTokens: 120, totalTokens: 720 },
    durationMs: 220,
  });
  events.emit('mission.planned', { missionId: PLANNED, userId: USER, agentId: AGENT, steps: 2, rounds: 2, tokens: 720 });
  step(5);
  events.emit('iteration.written', { userId: USER, missionId: PLANNED, iterationId: ITERATION, duplicate: false, nextRunAt: '2026-04-16T06:00:00.000Z', steps: 2 });
  events.emit('tokens.used', { agentId: AGENT, userId: USER, tokens: 720 });
  events.emit('mission.written', { missionId: PLANNED, userId: USER, iterationId: ITERATION, written: true });
  step();
  const failing = { missionId: PLAN_FAILED };
  events.emit('planner.llm-call.started', { context: failing, purpose: 'plan', round: 1, model: 'gemini-2.5-flash', messageCount: 2, toolCount: 3 });
  step(50);
  events.emit('planner.provider-error', { context: failing, purpose: 'plan', round: 1, provider: 'mana', kind: 'server', status: 503, attempts: 3, durationMs: 50 });
  events.emit('mission.plan-failed', { missionId: PLAN_FAILED, userId: USER, agentId: null, reason: `llm-error: ${SENTINEL}`, tokens: 0 });
  step();
  events.emit('tick.finished', {
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
    events: EventBus<EventMap>,
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

  it('exports tick, mission, LLM call and write-back spans with parents, attributes and statuses when a tick runs', async () => {
    const events = countingBus();
    const clock = createManualClock(START);
    const { tracing, logger } = open(events, clock, { nodeEnv: 'production' });
    expect(tracing.enabled).toBe(true);
    expect(logger.lines).toEqual([{ level: 'info', context: { endpoint: `${receiver.endpoint}/v1/traces` }, message: 'tracing enabled' }]);

    emitRealisticTick(events, clock);
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

    const planned = missionSpan(spans, PLANNED);
    expect(planned.parentSpanId).toBe(tick.spanId);
    expect(planned.attributes).toEqual({
      'mission.id': PLANNED,
      'user.id': USER,
      'agent.id': AGENT,
      'mission.steps': 2,
      'mission.rounds': 2,
      'mission.tokens': 720,
      'planner.stop_reason': 'assistant-stop',
      'planner.recorded_calls': 2,
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
      'agent.id': AGENT,
      'llm.purpose': 'plan',
      'llm.round': 1,
      'gen_ai.request.model': 'gemini-2.5-flash',
      'llm.message_count': 3,
      'llm.tool_count': 5,
      'llm.duration_ms': 100,
      'gen_ai.response.finish_reason': 'tool_calls',
      'llm.tool_call_count': 2,
      'gen_ai.usage.input_tokens': 300,
      'gen_ai.usage.output_tokens': 40,
      'llm.total_tokens': 340,
    });
    expect(BigInt(firstCall?.endTimeUnixNano ?? 0) - BigInt(firstCall?.startTimeUnixNano ?? 0)).toBe(100n * 1_000_000n);

    const [writeBack] = byName(spans, SPAN_NAMES.writeBack);
    expect(writeBack?.parentSpanId).toBe(planned.spanId);
    expect(writeBack?.attributes).toEqual({
      'mission.id': PLANNED,
      'user.id': USER,
      'write_back.steps': 2,
      'mission.iteration_id': ITERATION,
      'write_back.duplicate': false,
      'write_back.written': true,
    });
    expect(STATUS_OK_OR_UNSET).toContain(writeBack?.status.code);

    const skipped = missionSpan(spans, SKIPPED);
    expect(skipped.parentSpanId).toBe(tick.spanId);
    expect(skipped.attributes).toMatchObject({ 'mission.outcome': 'skipped', 'mission.skip_reason': 'agent-paused' });
    expect(STATUS_OK_OR_UNSET).toContain(skipped.status.code);

    const erroring = missionSpan(spans, ERRORING);
    expect(erroring.attributes).toEqual({ 'mission.id': ERRORING, 'user.id': USER, 'mission.error_stage': 'inputs', 'mission.outcome': 'error' });
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

  it('never exports user text when payloads carry it in error messages and reasons', async () => {
    const events = countingBus();
    const clock = createManualClock(START);
    const { tracing } = open(events, clock);
    emitRealisticTick(events, clock);
    // A scan-level failure whose message quotes user text, and payloads with extra text fields.
    clock.advance(1000);
    const second = new Date(clock.now()).toISOString();
    events.emit('tick.started', { scannedAt: second });
    events.emit('mission.claimed', { missionId: PLANNED, userId: USER, agentId: AGENT, title: SENTINEL, objective: SENTINEL });
    events.emit('planner.llm-call.started', {
      context: { missionId: PLANNED, prompt: SENTINEL },
      purpose: 'plan',
      round: 1,
      model: SENTINEL,
      messageCount: 1,
      toolCount: 1,
    });
    events.emit('tick.failed', { stage: 'claim', message: SENTINEL });
    events.emit('tick.finished', { stats: statsAt(second, { errors: [`claim: ${SENTINEL}`] }), durationMs: 3 });
    await tracing.shutdown();

    const raw = receiver.requests.map((request) => request.raw).join('\n');
    expect(raw.length).toBeGreaterThan(0);
    expect(raw).not.toContain('SENTINEL');
    expect(raw).not.toContain('Müller');
    expect(raw).not.toContain('biopsy');
    const spans = spansOf(receiver.requests);
    const secondTick = byName(spans, SPAN_NAMES.tick).find((span) => span.attributes['tick.failed_stage'] === 'claim');
    expect(secondTick?.status).toEqual({ code: STATUS_ERROR, message: 'tick failed in stage claim' });
    // The model name was prose, so it was dropped; the rest of the call is still traced.
    const call = byName(spans, SPAN_NAMES.llmCall).find((span) => span.parentSpanId !== undefined && span.attributes['llm.message_count'] === 1);
    expect(call?.attributes['gen_ai.request.model']).toBeUndefined();
  });

  it('records research steps as events on their mission span, with enums and counts but no user text', async () => {
    const events = countingBus();
    const clock = createManualClock(START);
    const { tracing } = open(events, clock);
    events.emit('tick.started', { scannedAt: START });
    events.emit('mission.claimed', { missionId: PLANNED, userId: USER, agentId: AGENT });
    events.emit('mission.claimed', { missionId: SKIPPED, userId: USER, agentId: AGENT });
    const base = { userId: USER, missionId: PLANNED };
    events.emit('research.shallow', { ...base, reason: 'deep-not-requested', status: 'found', feedCount: 3, articleCount: 7, query: SENTINEL });
    events.emit('research.submit-failed', { ...base, provider: 'mana-research', code: 'RESEARCH_HTTP_STATUS', kind: 'http-status', status: 503, message: SENTINEL });
    events.emit('research.pending-skip', { userId: USER, missionId: SKIPPED, provider: 'mana-research', taskId: 'task-42', remoteStatus: 'running', failedPolls: 1 });
    events.emit('mission.skipped', { missionId: SKIPPED, userId: USER, agentId: AGENT, reason: 'research-pending' });
    events.emit('research.completed', { userId: USER, missionId: 'not-running', provider: 'mana-research', taskId: 'task-7', hasAnswer: true });
    events.emit('mission.planned', { missionId: PLANNED, userId: USER, agentId: AGENT, steps: 1, rounds: 1, tokens: 10 });
    events.emit('mission.written', { missionId: PLANNED, userId: USER, iterationId: ITERATION, written: true });
    events.emit('tick.finished', { stats: statsAt(START), durationMs: 5 });
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
    ]);
    expect(eventsOf(SKIPPED)).toEqual([
      {
        name: 'research.pending-skip',
        attributes: { 'research.provider': 'mana-research', 'research.task_id': 'task-42', 'research.remote_status': 'running', 'research.failed_polls': 1 },
      },
    ]);
    // An event of a mission with no open span (another tick, another instance) is dropped.
    expect(raw).not.toContain('task-7');
  });

  it('ends spans left open with status ERROR when their tick finishes', async () => {
    const events = countingBus();
    const clock = createManualClock(START);
    const { tracing } = open(events, clock);
    events.emit('tick.started', { scannedAt: START });
    events.emit('mission.claimed', { missionId: PLANNED, userId: USER, agentId: null });
    events.emit('planner.llm-call.started', { context: { missionId: PLANNED }, purpose: 'compaction', round: 2, model: 'm', messageCount: 9, toolCount: 0 });
    events.emit('mission.claimed', { missionId: SKIPPED, userId: USER, agentId: null });
    events.emit('mission.planned', { missionId: SKIPPED, userId: USER, agentId: null, steps: 1, rounds: 1, tokens: 10 });
    clock.advance(40);
    events.emit('tick.finished', { stats: statsAt(START), durationMs: 40 });
    // Events of a finished mission are ignored rather than reopening anything.
    events.emit('mission.written', { missionId: SKIPPED, userId: USER, iterationId: ITERATION, written: true });
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
    expect(missionSpan(spans, PLANNED).status.message).toBe('tick ended before the mission finished');
    const [call] = byName(spans, SPAN_NAMES.llmCall);
    expect(call?.parentSpanId).toBe(missionSpan(spans, PLANNED).spanId);
    expect(call?.attributes['llm.purpose']).toBe('compaction');
  });

  it('parents an LLM call on the tick when its event carries no mission id', async () => {
    const events = countingBus();
    const clock = createManualClock(START);
    const { tracing } = open(events, clock);
    events.emit('tick.started', { scannedAt: START });
    events.emit('planner.llm-call.started', { context: {}, purpose: 'plan', round: 1, model: 'm', messageCount: 2, toolCount: 1 });
    clock.advance(7);
    events.emit('planner.llm-call.finished', { context: {}, purpose: 'plan', round: 1, model: 'm', durationMs: 7, usage: undefined, finishReason: 'stop', toolCallCount: 0 });
    events.emit('tick.finished', { stats: statsAt(START), durationMs: 7 });
    await tracing.shutdown();

    const spans = spansOf(receiver.requests);
    const [tick] = byName(spans, SPAN_NAMES.tick);
    const [call] = byName(spans, SPAN_NAMES.llmCall);
    expect(call?.parentSpanId).toBe(tick?.spanId);
    expect(STATUS_OK_OR_UNSET).toContain(call?.status.code);
    expect(call?.attributes['mission.id']).toBeUndefined();
  });

  it('exports each span as it ends and sends the configured headers when nodeEnv is development', async () => {
    const events = countingBus();
    const clock = createManualClock(START);
    const { tracing } = open(events, clock, { nodeEnv: 'development', endpoint: `${receiver.endpoint}///`, headers: { authorization: 'Bearer otlp-token' } });
    events.emit('tick.started', { scannedAt: START });
    events.emit('tick.finished', { stats: statsAt(START), durationMs: 0 });
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
    events.emit('tick.started', { scannedAt: START });
    events.emit('mission.claimed', { missionId: PLANNED, userId: USER, agentId: null });
    await tracing.shutdown();
    await tracing.shutdown();
    expect(events.subscriptions()).toBe(0);
    const spans = spansOf(receiver.requests);
    expect(spans.map((span) => [span.name, span.status.code]).sort()).toEqual([
      [SPAN_NAMES.mission, STATUS_ERROR],
      [SPAN_NAMES.tick, STATUS_ERROR],
    ]);
    const exported = receiver.requests.length;
    emitRealisticTick(events, clock);
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
      emitRealisticTick(events, clock);
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
      emitRealisticTick(events, clock);
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

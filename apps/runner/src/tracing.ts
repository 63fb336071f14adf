import {
  type Attributes,
  type AttributeValue,
  type Context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { type Clock, type EventBus, type EventMap, type Logger, type TickEvents, describeError, systemClock } from '@mana-ai/core';
import type { PlannerEvents } from '@mana-ai/planner';
import type { IterationWrittenEvent } from '@mana-ai/projection';
import type { ResearchEvents } from '@mana-ai/research';
import { RunnerError } from './errors.js';

/** Span names the runner exports. */
export const SPAN_NAMES = {
  tick: 'mana_ai.tick',
  mission: 'mana_ai.mission',
  llmCall: 'mana_ai.llm_call',
  writeBack: 'mana_ai.write_back',
} as const;

/**
 * The only attribute keys a span may carry: ids, counts and enums. Anything else is dropped by
 * {@link filterSpanAttributes}, so a future change cannot leak mission text into a span by accident.
 */
export const SPAN_ATTRIBUTE_KEYS: ReadonlySet<string> = new Set([
  'tick.due_missions',
  'tick.plans_produced',
  'tick.plans_written',
  'tick.parse_failures',
  'tick.errors',
  'tick.skipped',
  'tick.duration_ms',
  'tick.failed_stage',
  'refresh.rows_applied',
  'refresh.new_snapshots',
  'refresh.updated_snapshots',
  'refresh.skipped',
  'mission.id',
  'user.id',
  'agent.id',
  'mission.outcome',
  'mission.skip_reason',
  'mission.error_stage',
  'mission.iteration_id',
  'mission.steps',
  'mission.rounds',
  'mission.tokens',
  'planner.stop_reason',
  'planner.recorded_calls',
  'planner.rejected_calls',
  'llm.purpose',
  'llm.round',
  'llm.message_count',
  'llm.tool_count',
  'llm.tool_call_count',
  'llm.duration_ms',
  'llm.attempts',
  'llm.provider',
  'llm.total_tokens',
  'gen_ai.request.model',
  'gen_ai.response.finish_reason',
  'gen_ai.usage.input_tokens',
  'gen_ai.usage.output_tokens',
  'error.type',
  'http.response.status_code',
  'write_back.written',
  'write_back.duplicate',
  'write_back.steps',
  'research.provider',
  'research.task_id',
  'research.status',
  'research.reason',
  'research.remote_status',
  'research.failed_polls',
  'research.feed_count',
  'research.article_count',
  'research.has_answer',
  'research.error_code',
  'research.error_kind',
]);

/** Research events recorded as span events on their mission's span (names as emitted). */
export const RESEARCH_SPAN_EVENTS = [
  'research.shallow',
  'research.submitted',
  'research.submit-failed',
  'research.pending-skip',
  'research.completed',
  'research.failed',
  'research.consumed',
] as const;

// Ids, enums and model names only: any whitespace or punctuation typical of prose rejects the value.
const SAFE_STRING = /^[A-Za-z0-9._:/@+-]{1,128}$/;

/**
 * Keeps the allowlisted keys ({@link SPAN_ATTRIBUTE_KEYS}) whose values are finite numbers,
 * booleans or short id-like strings; drops everything else.
 */
export function filterSpanAttributes(attributes: Record<string, unknown>): Attributes {
  const kept: Attributes = {};
  for (const [key, value] of Object.entries(attributes)) {
    if (!SPAN_ATTRIBUTE_KEYS.has(key)) continue;
    const safe = safeValue(value);
    if (safe !== undefined) kept[key] = safe;
  }
  return kept;
}

function safeValue(value: unknown): AttributeValue | undefined {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string') return SAFE_STRING.test(value) ? value : undefined;
  return undefined;
}

/** Collaborators of {@link createTracing}. */
export interface TracingDeps {
  /** The bus the tick, planner and projection emit on. */
  events: EventBus<EventMap>;
  logger: Logger;
  /** Span start and end times (default: the system clock). */
  clock?: Clock;
}

/** Options of {@link createTracing}. */
export interface TracingOptions {
  /** `OTEL_EXPORTER_OTLP_ENDPOINT`; unset disables tracing. Spans go to `<endpoint>/v1/traces`. */
  endpoint: string | undefined;
  /** The `service.version` resource attribute. */
  serviceVersion: string;
  /** `development` exports every span at once; anything else batches. */
  nodeEnv?: string;
  /** Extra headers of the export requests (e.g. an auth token); never logged. */
  headers?: Record<string, string>;
  /** Bound of the final flush in {@link Tracing.shutdown}, so a dead collector cannot stall app close (default 5000 ms). */
  shutdownTimeoutMs?: number;
}

/** Tracing of one app instance. */
export interface Tracing {
  /** True when an endpoint was configured. */
  readonly enabled: boolean;
  /** Unsubscribes, ends spans still open with status ERROR, flushes and stops the exporter. Idempotent. */
  shutdown(): Promise<void>;
}

type TracedEvents = TickEvents & PlannerEvents & ResearchEvents & { 'iteration.written': IterationWrittenEvent };

const MAX_OPEN_TICKS = 8;
const MAX_OPEN_MISSIONS = 10_000;
const MAX_OPEN_LLM_CALLS = 1_000;
const TRACER_NAME = 'mana-ai';
const DEFAULT_SHUTDOWN_TIMEOUT_MS = 5_000;

interface OpenSpan {
  span: Span;
  /** `scannedAt` of the tick the span belongs to (undefined: none was open). */
  tickKey: string | undefined;
}

interface OpenTick {
  span: Span;
  failedStage?: string;
}

interface OpenMission extends OpenSpan {
  context: Context;
  writeBack?: Span;
}

interface OpenLlmCall extends OpenSpan {
  missionId: string | undefined;
}

/**
 * Creates the runner's tracing: when `options.endpoint` is set, a per-instance (never global)
 * tracer provider exporting OTLP/HTTP JSON, and listeners that turn tick, mission, planner and
 * write-back events into spans `mana_ai.tick` › `mana_ai.mission` › `mana_ai.llm_call` /
 * `mana_ai.write_back`. Attributes are ids, counts and enums only; status messages are constants.
 * Unset endpoint: subscribes nothing.
 */
export function createTracing(deps: TracingDeps, options: TracingOptions): Tracing {
  if (options.endpoint === undefined || options.endpoint.trim() === '') {
    deps.logger.info({}, 'tracing disabled (set OTEL_EXPORTER_OTLP_ENDPOINT to enable)');
    return { enabled: false, shutdown: async () => {} };
  }
  const url = tracesUrl(options.endpoint);
  const exporter = new OTLPTraceExporter({ url: url.href, ...(options.headers ? { headers: { ...options.headers } } : {}) });
  const processor = options.nodeEnv === 'development' ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter);
  const provider = new BasicTracerProvider({
    resource: defaultResource().merge(
      resourceFromAttributes({ 'service.name': 'mana-ai', 'service.version': options.serviceVersion }),
    ),
    spanProcessors: [processor],
  });
  const tracer = provider.getTracer(TRACER_NAME, options.serviceVersion);
  const recorder = createSpanRecorder(tracer, deps.clock ?? systemClock);

  const unsubscribers: Array<() => void> = [];
  const on = <Name extends keyof TracedEvents & string>(name: Name, listener: (payload: TracedEvents[Name]) => void) => {
    unsubscribers.push(deps.events.on(name, listener as (payload: unknown) => void));
  };
  on('tick.started', (payload) => recorder.tickStarted(payload));
  on('tick.refreshed', (payload) => recorder.tickRefreshed(payload));
  on('tick.failed', (payload) => recorder.tickFailed(payload));
  on('tick.finished', (payload) => recorder.tickFinished(payload));
  on('mission.claimed', (payload) => recorder.missionClaimed(payload));
  on('mission.skipped', (payload) => recorder.missionSkipped(payload));
  on('mission.planned', (payload) => recorder.missionPlanned(payload));
  on('mission.plan-failed', (payload) => recorder.missionPlanFailed(payload));
  on('mission.written', (payload) => recorder.missionWritten(payload));
  on('mission.error', (payload) => recorder.missionError(payload));
  on('iteration.written', (payload) => recorder.iterationWritten(payload));
  on('planner.llm-call.started', (payload) => recorder.llmCallStarted(payload));
  on('planner.llm-call.finished', (payload) => recorder.llmCallFinished(payload));
  on('planner.provider-error', (payload) => recorder.providerError(payload));
  on('planner.run.finished', (payload) => recorder.plannerRunFinished(payload));
  for (const name of RESEARCH_SPAN_EVENTS) on(name, (payload) => recorder.researchEvent(name, payload));

  // Userinfo could hold credentials: log scheme, host and path only.
  deps.logger.info({ endpoint: `${url.protocol}//${url.host}${url.pathname}` }, 'tracing enabled');

  let stopping: Promise<void> | undefined;
  return {
    enabled: true,
    shutdown: () =>
      (stopping ??= (async () => {
        for (const unsubscribe of unsubscribers.splice(0)) unsubscribe();
        recorder.endAll('tracing shut down before the span ended');
        const timeoutMs = options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timed-out'>((resolve) => {
          timer = setTimeout(() => resolve('timed-out'), timeoutMs);
          timer.unref();
        });
        const flushed = provider.shutdown().then(
          () => 'flushed' as const,
          (error: unknown) => {
            deps.logger.warn({ err: describeError(error) }, 'tracing flush failed: spans dropped');
            return 'failed' as const;
          },
        );
        const outcome = await Promise.race([flushed, timedOut]);
        clearTimeout(timer);
        if (outcome === 'timed-out') deps.logger.warn({ timeoutMs }, 'tracing flush timed out: spans dropped');
      })()),
  };
}

/** An enum value for a status message; anything else (a future free-text field) becomes `unknown`. */
function enumToken(value: unknown): string {
  return typeof value === 'string' && /^[a-z0-9-]{1,40}$/.test(value) ? value : 'unknown';
}

function tracesUrl(endpoint: string): URL {
  let url: URL;
  try {
    url = new URL(`${endpoint.trim().replace(/\/+$/, '')}/v1/traces`);
  } catch {
    throw new RunnerError('RUNNER_CONFIG_INVALID', 'OTEL_EXPORTER_OTLP_ENDPOINT is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new RunnerError('RUNNER_CONFIG_INVALID', 'OTEL_EXPORTER_OTLP_ENDPOINT is not an http(s) URL');
  }
  return url;
}

/** The event → span state machine; every map is bounded and emptied when its tick finishes. */
function createSpanRecorder(tracer: Tracer, clock: Clock) {
  const ticks = new Map<string, OpenTick>();
  const missions = new Map<string, OpenMission>();
  const llmCalls = new Map<string, OpenLlmCall>();
  const now = (): Date => new Date(clock.now());

  const start = (name: string, parent: Context, attributes: Record<string, unknown>, kind = SpanKind.INTERNAL): Span =>
    tracer.startSpan(name, { kind, startTime: now(), attributes: filterSpanAttributes(attributes) }, parent);
  const set = (span: Span, attributes: Record<string, unknown>): void => {
    span.setAttributes(filterSpanAttributes(attributes));
  };
  const fail = (span: Span, message: string): void => {
    span.setStatus({ code: SpanStatusCode.ERROR, message });
  };
  const currentTickKey = (): string | undefined => {
    let last: string | undefined;
    for (const key of ticks.keys()) last = key;
    return last;
  };
  const parentOf = (tickKey: string | undefined): Context => {
    const tick = tickKey === undefined ? undefined : ticks.get(tickKey);
    return tick ? trace.setSpan(ROOT_CONTEXT, tick.span) : ROOT_CONTEXT;
  };
  const evictOldest = <Value>(map: Map<string, Value>, max: number, end: (key: string, value: Value) => void): void => {
    while (map.size >= max) {
      const oldest = map.entries().next().value;
      if (!oldest) return;
      end(oldest[0], oldest[1]);
    }
  };
  const llmKey = (missionId: string | undefined, purpose: string, round: number): string => `${missionId ?? ''}|${purpose}|${round}`;

  const endLlmCall = (key: string, call: OpenLlmCall, error?: string): void => {
    llmCalls.delete(key);
    if (error !== undefined) fail(call.span, error);
    call.span.end(now());
  };
  const endLlmCallsOf = (missionId: string, error: string): void => {
    for (const [key, call] of llmCalls) if (call.missionId === missionId) endLlmCall(key, call, error);
  };
  const endMission = (missionId: string, outcome: string, error?: string): OpenMission | undefined => {
    const mission = missions.get(missionId);
    if (!mission) return undefined;
    missions.delete(missionId);
    endLlmCallsOf(missionId, 'mission ended before the LLM call finished');
    if (mission.writeBack) {
      if (error !== undefined) fail(mission.writeBack, error);
      mission.writeBack.end(now());
    }
    set(mission.span, { 'mission.outcome': outcome });
    if (error !== undefined) fail(mission.span, error);
    mission.span.end(now());
    return mission;
  };
  const endTick = (key: string, tick: OpenTick, error?: string): void => {
    for (const [callKey, call] of llmCalls) if (call.tickKey === key) endLlmCall(callKey, call, 'tick ended before the LLM call finished');
    for (const [missionId, mission] of missions) {
      if (mission.tickKey === key) endMission(missionId, 'unfinished', 'tick ended before the mission finished');
    }
    ticks.delete(key);
    if (tick.failedStage !== undefined) fail(tick.span, `tick failed in stage ${tick.failedStage}`);
    else if (error !== undefined) fail(tick.span, error);
    tick.span.end(now());
  };

  return {
    tickStarted(payload: TracedEvents['tick.started']): void {
      const key = String(payload.scannedAt);
      const previous = ticks.get(key);
      if (previous) endTick(key, previous, 'superseded by a tick with the same start');
      evictOldest(ticks, MAX_OPEN_TICKS, (oldKey, tick) => endTick(oldKey, tick, 'evicted: too many open ticks'));
      ticks.set(key, { span: start(SPAN_NAMES.tick, ROOT_CONTEXT, {}) });
    },
    tickRefreshed(payload: TracedEvents['tick.refreshed']): void {
      const tick = ticks.get(currentTickKey() ?? '');
      if (!tick) return;
      set(tick.span, {
        'refresh.rows_applied': payload.rowsApplied,
        'refresh.new_snapshots': payload.newSnapshots,
        'refresh.updated_snapshots': payload.updatedSnapshots,
        'refresh.skipped': payload.skipped === true,
      });
    },
    tickFailed(payload: TracedEvents['tick.failed']): void {
      // The message may quote SQL or driver text: only the stage (an enum) is recorded.
      const tick = ticks.get(currentTickKey() ?? '');
      if (!tick) return;
      tick.failedStage = enumToken(payload.stage);
      set(tick.span, { 'tick.failed_stage': tick.failedStage });
    },
    tickFinished(payload: TracedEvents['tick.finished']): void {
      const key = String(payload.stats.scannedAt);
      const tick = ticks.get(key);
      if (!tick) return;
      const { stats } = payload;
      set(tick.span, {
        'tick.due_missions': stats.dueMissionCount,
        'tick.plans_produced': stats.plansProduced,
        'tick.plans_written': stats.plansWrittenBack,
        'tick.parse_failures': stats.parseFailures,
        'tick.errors': stats.errors.length,
        'tick.skipped': Object.values(stats.skipped).reduce((sum, count) => sum + (count ?? 0), 0),
        'tick.duration_ms': payload.durationMs,
      });
      endTick(key, tick);
    },
    /** A research step of a running mission, as an event on its span (ids, counts and enums only). */
    researchEvent(name: (typeof RESEARCH_SPAN_EVENTS)[number], payload: ResearchEvents[(typeof RESEARCH_SPAN_EVENTS)[number]]): void {
      const mission = missions.get(payload.missionId);
      if (!mission) return;
      const fields = payload as unknown as Partial<Record<string, unknown>>;
      // `status` is an outcome enum on research.shallow and an HTTP status on research.submit-failed.
      const status = fields.status;
      mission.span.addEvent(
        name,
        filterSpanAttributes({
          'research.provider': fields.provider,
          'research.task_id': fields.taskId,
          'research.status': typeof status === 'string' ? status : undefined,
          'research.reason': fields.reason,
          'research.remote_status': fields.remoteStatus,
          'research.failed_polls': fields.failedPolls,
          'research.feed_count': fields.feedCount,
          'research.article_count': fields.articleCount,
          'research.has_answer': fields.hasAnswer,
          'research.error_code': fields.code,
          'research.error_kind': fields.kind,
          'http.response.status_code': typeof status === 'number' ? status : undefined,
        }),
        now(),
      );
    },
    missionClaimed(payload: TracedEvents['mission.claimed']): void {
      if (missions.has(payload.missionId)) endMission(payload.missionId, 'unfinished', 'claimed again before the run ended');
      evictOldest(missions, MAX_OPEN_MISSIONS, (missionId) => endMission(missionId, 'unfinished', 'evicted: too many open missions'));
      const tickKey = currentTickKey();
      const span = start(SPAN_NAMES.mission, parentOf(tickKey), {
        'mission.id': payload.missionId,
        'user.id': payload.userId,
        'agent.id': payload.agentId ?? undefined,
      });
      missions.set(payload.missionId, { span, tickKey, context: trace.setSpan(ROOT_CONTEXT, span) });
    },
    missionSkipped(payload: TracedEvents['mission.skipped']): void {
      const mission = missions.get(payload.missionId);
      if (mission) set(mission.span, { 'mission.skip_reason': payload.reason });
      endMission(payload.missionId, 'skipped');
    },
    missionPlanned(payload: TracedEvents['mission.planned']): void {
      const mission = missions.get(payload.missionId);
      if (!mission) return;
      set(mission.span, { 'mission.steps': payload.steps, 'mission.rounds': payload.rounds, 'mission.tokens': payload.tokens });
      mission.writeBack?.end(now());
      mission.writeBack = start(SPAN_NAMES.writeBack, mission.context, {
        'mission.id': payload.missionId,
        'user.id': payload.userId,
        'write_back.steps': payload.steps,
      });
    },
    missionPlanFailed(payload: TracedEvents['mission.plan-failed']): void {
      // `reason` is free text from the planner: never recorded.
      const mission = missions.get(payload.missionId);
      if (mission) set(mission.span, { 'mission.tokens': payload.tokens });
      endMission(payload.missionId, 'plan-failed', 'planner loop failed');
    },
    iterationWritten(payload: TracedEvents['iteration.written']): void {
      const writeBack = missions.get(payload.missionId)?.writeBack;
      if (!writeBack) return;
      set(writeBack, {
        'mission.iteration_id': payload.iterationId,
        'write_back.duplicate': payload.duplicate,
        'write_back.steps': payload.steps,
      });
    },
    missionWritten(payload: TracedEvents['mission.written']): void {
      const mission = missions.get(payload.missionId);
      if (!mission) return;
      set(mission.span, { 'mission.iteration_id': payload.iterationId });
      if (mission.writeBack) {
        set(mission.writeBack, { 'mission.iteration_id': payload.iterationId, 'write_back.written': payload.written });
      }
      endMission(payload.missionId, payload.written ? 'written' : 'duplicate');
    },
    missionError(payload: TracedEvents['mission.error']): void {
      // The message may carry decrypted input or LLM output: only the stage (an enum) is recorded.
      const mission = missions.get(payload.missionId);
      if (!mission) return;
      set(mission.span, { 'mission.error_stage': payload.stage });
      endMission(payload.missionId, 'error', `mission failed in stage ${enumToken(payload.stage)}`);
    },
    llmCallStarted(payload: TracedEvents['planner.llm-call.started']): void {
      const missionId = payload.context?.missionId;
      const mission = missionId === undefined ? undefined : missions.get(missionId);
      const key = llmKey(missionId, payload.purpose, payload.round);
      const previous = llmCalls.get(key);
      if (previous) endLlmCall(key, previous, 'superseded by a call with the same round');
      evictOldest(llmCalls, MAX_OPEN_LLM_CALLS, (oldKey, call) => endLlmCall(oldKey, call, 'evicted: too many open LLM calls'));
      const tickKey = mission ? mission.tickKey : currentTickKey();
      const span = start(
        SPAN_NAMES.llmCall,
        mission ? mission.context : parentOf(tickKey),
        {
          'mission.id': missionId,
          'agent.id': payload.context?.agentId,
          'llm.purpose': payload.purpose,
          'llm.round': payload.round,
          'gen_ai.request.model': payload.model,
          'llm.message_count': payload.messageCount,
          'llm.tool_count': payload.toolCount,
        },
        SpanKind.CLIENT,
      );
      llmCalls.set(key, { span, tickKey, missionId: mission ? missionId : undefined });
    },
    llmCallFinished(payload: TracedEvents['planner.llm-call.finished']): void {
      const key = llmKey(payload.context?.missionId, payload.purpose, payload.round);
      const call = llmCalls.get(key);
      if (!call) return;
      set(call.span, {
        'llm.duration_ms': payload.durationMs,
        'gen_ai.response.finish_reason': payload.finishReason,
        'llm.tool_call_count': payload.toolCallCount,
        'gen_ai.usage.input_tokens': payload.usage?.promptTokens,
        'gen_ai.usage.output_tokens': payload.usage?.completionTokens,
        'llm.total_tokens': payload.usage?.totalTokens,
      });
      endLlmCall(key, call);
    },
    providerError(payload: TracedEvents['planner.provider-error']): void {
      const key = llmKey(payload.context?.missionId, payload.purpose, payload.round);
      const call = llmCalls.get(key);
      if (!call) return;
      set(call.span, {
        'llm.provider': payload.provider,
        'error.type': payload.kind,
        'http.response.status_code': payload.status,
        'llm.attempts': payload.attempts,
        'llm.duration_ms': payload.durationMs,
      });
      endLlmCall(key, call, `provider error: ${enumToken(payload.kind)}`);
    },
    plannerRunFinished(payload: TracedEvents['planner.run.finished']): void {
      const missionId = payload.context?.missionId;
      const mission = missionId === undefined ? undefined : missions.get(missionId);
      if (!mission) return;
      set(mission.span, {
        'planner.stop_reason': payload.stopReason,
        'planner.recorded_calls': payload.recordedCalls,
        'planner.rejected_calls': payload.rejectedCalls,
      });
    },
    /** Ends every open span (shutdown), children first. */
    endAll(error: string): void {
      for (const [key, tick] of [...ticks]) endTick(key, tick, error);
      for (const [key, call] of [...llmCalls]) endLlmCall(key, call, error);
      for (const missionId of [...missions.keys()]) endMission(missionId, 'unfinished', error);
    },
  };
}

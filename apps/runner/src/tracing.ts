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
import { type Clock, type DispatcherEvents, type EventBus, type Logger, type RunIds, describeError, systemClock } from '@mana-ai/core';
import type { PlannerEvents } from '@mana-ai/planner';
import type { IterationWrittenEvent, MissionsClaimedEvent, RefreshResult } from '@mana-ai/projection';
import type { ResearchEvents } from '@mana-ai/research';
import { RunnerError } from './errors.js';

/** Span names the runner exports. */
export const SPAN_NAMES = {
  tick: 'mana_ai.tick',
  mission: 'mana_ai.mission',
  llmCall: 'mana_ai.llm_call',
  writeBack: 'mana_ai.write_back',
  refresh: 'mana_ai.refresh',
  claim: 'mana_ai.claim',
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
  'tick.pass_id',
  'refresh.rows_applied',
  'refresh.rows_already_applied',
  'refresh.new_snapshots',
  'refresh.updated_snapshots',
  'refresh.skipped',
  'refresh.rows_read',
  'refresh.rows_ignored',
  'refresh.bad_rows',
  'refresh.deleted_snapshots',
  'refresh.batches',
  'refresh.completed',
  'claim.limit',
  'claim.claimed',
  'db.system',
  'mission.id',
  'mission.run_id',
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

/** The events tracing reads, each typed by the package that emits it. */
export type TracedEvents = DispatcherEvents &
  PlannerEvents &
  ResearchEvents & { 'iteration.written': IterationWrittenEvent; 'refresh.done': RefreshResult; 'missions.claimed': MissionsClaimedEvent };

/** Collaborators of {@link createTracing}. */
export interface TracingDeps {
  /** The bus the dispatcher, planner, research stage and projection emit on; tracing only subscribes. */
  events: Pick<EventBus<TracedEvents>, 'on'>;
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

const MAX_OPEN_PASSES = 8;
const MAX_OPEN_RUNS = 10_000;
const MAX_OPEN_LLM_CALLS = 1_000;
const TRACER_NAME = 'mana-ai';
const DEFAULT_SHUTDOWN_TIMEOUT_MS = 5_000;

type ResearchSpanEvent = (typeof RESEARCH_SPAN_EVENTS)[number];

/** The optional fields of the research payloads: each payload widens to it without a cast. */
interface ResearchFields {
  provider?: string;
  taskId?: string;
  reason?: string;
  status?: string | number;
  remoteStatus?: string;
  failedPolls?: number;
  feedCount?: number;
  articleCount?: number;
  hasAnswer?: boolean;
  code?: string;
  kind?: string;
}

/** An open `mana_ai.tick` span: one pass (`runPass()`, `POST /internal/tick`). */
interface OpenPass {
  span: Span;
  context: Context;
  failedStage?: string;
}

/** An open `mana_ai.mission` span: one run, from `mission.claimed` to `mission.finished`. */
interface OpenRun {
  span: Span;
  context: Context;
  ids: RunIds;
  passId: string | null;
  /** Open from `mission.planned` until `mission.written`, `mission.error` or `mission.finished`. */
  writeBack?: Span;
  /** `mission.written`'s flag: false (an iteration that already existed) ends the run as `duplicate`. */
  written?: boolean;
  /** The constant status message of a failed run, set when the run ends. */
  failure?: string;
  /** Keys of the run's open LLM calls. */
  llmCalls: Set<string>;
}

/** An open `mana_ai.llm_call` span. */
interface OpenLlmCall {
  span: Span;
  runId: string;
}

/**
 * The open spans of one tracing instance. Parentage comes from the ids the events carry (`passId`,
 * `runId`), never from their order. Every map is bounded: at its bound the oldest entry is ended.
 */
interface RecorderState {
  tracer: Tracer;
  clock: Clock;
  /** By `passId`. */
  passes: Map<string, OpenPass>;
  /** By `runId`. */
  runs: Map<string, OpenRun>;
  /**
   * The open run of each `userId|missionId`, for the events that carry no run id (research, the
   * projection's `iteration.written`). One instance runs a mission at most once at a time, so the
   * pair names one run; entries point into `runs` and leave with their run.
   */
  runOfMission: Map<string, string>;
  /** By `runId|purpose|round`. */
  llmCalls: Map<string, OpenLlmCall>;
}

/**
 * Creates the runner's tracing: when `options.endpoint` is set, a per-instance (never global)
 * tracer provider exporting OTLP/HTTP JSON, and listeners that turn dispatcher, planner, research
 * and write-back events into spans: `mana_ai.mission` per run (a child of its pass's `mana_ai.tick`,
 * or a trace of its own for the continuous dispatcher) › `mana_ai.llm_call` / `mana_ai.write_back`.
 * Attributes are ids, counts and enums only; status messages are constants. Unset endpoint:
 * subscribes nothing.
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
  const state: RecorderState = {
    tracer: provider.getTracer(TRACER_NAME, options.serviceVersion),
    clock: deps.clock ?? systemClock,
    passes: new Map(),
    runs: new Map(),
    runOfMission: new Map(),
    llmCalls: new Map(),
  };
  const unsubscribers = subscribe(deps.events, state);

  // Userinfo could hold credentials: log scheme, host and path only.
  deps.logger.info({ endpoint: `${url.protocol}//${url.host}${url.pathname}` }, 'tracing enabled');

  let stopping: Promise<void> | undefined;
  return {
    enabled: true,
    shutdown: () =>
      (stopping ??= (async () => {
        for (const unsubscribe of unsubscribers.splice(0)) unsubscribe();
        endAll(state, 'tracing shut down before the span ended');
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

/** Subscribes the span listeners; returns the functions that unsubscribe them. */
function subscribe(events: TracingDeps['events'], state: RecorderState): Array<() => void> {
  return [
    events.on('tick.started', (payload) => passStarted(state, payload)),
    events.on('tick.refreshed', (payload) => passRefreshed(state, payload)),
    events.on('tick.failed', (payload) => passFailed(state, payload)),
    events.on('tick.finished', (payload) => passFinished(state, payload)),
    events.on('refresh.done', (payload) => refreshDone(state, payload)),
    events.on('missions.claimed', (payload) => missionsClaimed(state, payload)),
    events.on('mission.claimed', (payload) => runClaimed(state, payload)),
    events.on('mission.skipped', (payload) => runSkipped(state, payload)),
    events.on('mission.planned', (payload) => runPlanned(state, payload)),
    events.on('mission.plan-failed', (payload) => runPlanFailed(state, payload)),
    events.on('iteration.written', (payload) => iterationWritten(state, payload)),
    events.on('mission.written', (payload) => runWritten(state, payload)),
    events.on('mission.error', (payload) => runFailed(state, payload)),
    events.on('mission.finished', (payload) => runFinished(state, payload)),
    events.on('planner.llm-call.started', (payload) => llmCallStarted(state, payload)),
    events.on('planner.llm-call.finished', (payload) => llmCallFinished(state, payload)),
    events.on('planner.provider-error', (payload) => llmCallFailed(state, payload)),
    events.on('planner.run.finished', (payload) => plannerRunFinished(state, payload)),
    ...RESEARCH_SPAN_EVENTS.map((name) => events.on(name, (payload) => researchStep(state, name, payload))),
  ];
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


function now(state: RecorderState): Date {
  return new Date(state.clock.now());
}

function startSpan(state: RecorderState, name: string, parent: Context, attributes: Record<string, unknown>, kind = SpanKind.INTERNAL): Span {
  return state.tracer.startSpan(name, { kind, startTime: now(state), attributes: filterSpanAttributes(attributes) }, parent);
}

function setAttributes(span: Span, attributes: Record<string, unknown>): void {
  span.setAttributes(filterSpanAttributes(attributes));
}

function fail(span: Span, message: string): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}

/** Ends the oldest entries until `map` has room for one more. */
function evictOldest<Value>(map: Map<string, Value>, max: number, end: (key: string) => void): void {
  while (map.size >= max) {
    const oldest = map.keys().next();
    if (oldest.done) return;
    end(oldest.value);
    map.delete(oldest.value);
  }
}

function missionKey(userId: string, missionId: string): string {
  return `${userId}|${missionId}`;
}

function llmCallKey(runId: string, purpose: string, round: number): string {
  return `${runId}|${purpose}|${round}`;
}

/** The open run of a mission, for events that carry no run id. */
function runOfMission(state: RecorderState, userId: string, missionId: string): OpenRun | undefined {
  const runId = state.runOfMission.get(missionKey(userId, missionId));
  return runId === undefined ? undefined : state.runs.get(runId);
}

function endLlmCall(state: RecorderState, key: string, error?: string): void {
  const call = state.llmCalls.get(key);
  if (!call) return;
  state.llmCalls.delete(key);
  state.runs.get(call.runId)?.llmCalls.delete(key);
  if (error !== undefined) fail(call.span, error);
  call.span.end(now(state));
}

function endWriteBack(state: RecorderState, run: OpenRun, error?: string): void {
  if (!run.writeBack) return;
  if (error !== undefined) fail(run.writeBack, error);
  run.writeBack.end(now(state));
  run.writeBack = undefined;
}

/** Ends a run's span and its open children; `error` (or the run's recorded failure) sets status ERROR. */
function endRun(state: RecorderState, runId: string, outcome: string, error?: string): void {
  const run = state.runs.get(runId);
  if (!run) return;
  state.runs.delete(runId);
  const key = missionKey(run.ids.userId, run.ids.missionId);
  if (state.runOfMission.get(key) === runId) state.runOfMission.delete(key);
  for (const callKey of [...run.llmCalls]) endLlmCall(state, callKey, 'mission ended before the LLM call finished');
  const failure = error ?? run.failure;
  endWriteBack(state, run, failure);
  setAttributes(run.span, { 'mission.outcome': outcome });
  if (failure !== undefined) fail(run.span, failure);
  run.span.end(now(state));
}

/** Ends a pass's span; runs of the pass still open (none, when the dispatcher keeps its order) end first. */
function endPass(state: RecorderState, passId: string, error?: string): void {
  const pass = state.passes.get(passId);
  if (!pass) return;
  state.passes.delete(passId);
  for (const [runId, run] of state.runs) {
    if (run.passId === passId) endRun(state, runId, 'unfinished', 'pass ended before the mission finished');
  }
  if (pass.failedStage !== undefined) fail(pass.span, `tick failed in stage ${pass.failedStage}`);
  else if (error !== undefined) fail(pass.span, error);
  pass.span.end(now(state));
}

/** Ends every open span (shutdown), children first. */
function endAll(state: RecorderState, error: string): void {
  for (const key of [...state.llmCalls.keys()]) endLlmCall(state, key, error);
  for (const runId of [...state.runs.keys()]) endRun(state, runId, 'unfinished', error);
  for (const passId of [...state.passes.keys()]) endPass(state, passId, error);
}


function passStarted(state: RecorderState, payload: TracedEvents['tick.started']): void {
  endPass(state, payload.passId, 'superseded by a pass with the same id');
  evictOldest(state.passes, MAX_OPEN_PASSES, (passId) => endPass(state, passId, 'evicted: too many open passes'));
  const span = startSpan(state, SPAN_NAMES.tick, ROOT_CONTEXT, { 'tick.pass_id': payload.passId });
  state.passes.set(payload.passId, { span, context: trace.setSpan(ROOT_CONTEXT, span) });
}

/**
 * Refreshes and claims happen on every dispatcher cycle, in a pass or not, and their events name no
 * pass: they are recorded on the pass only while exactly one is open (the last refresh wins), and
 * otherwise left to the metrics rather than guessed onto a span.
 */
function onlyOpenPass(state: RecorderState): OpenPass | undefined {
  if (state.passes.size !== 1) return undefined;
  return state.passes.values().next().value;
}

function passRefreshed(state: RecorderState, payload: TracedEvents['tick.refreshed']): void {
  const pass = onlyOpenPass(state);
  if (!pass) return;
  setAttributes(pass.span, {
    'refresh.rows_applied': payload.rowsApplied,
    'refresh.new_snapshots': payload.newSnapshots,
    'refresh.updated_snapshots': payload.updatedSnapshots,
    'refresh.skipped': payload.skipped === true,
  });
}

/**
 * A database span that already ended: `durationMs` back from now. It is a child of the one open
 * pass, else a trace of its own (the continuous dispatcher's cycles).
 */
function databaseSpan(state: RecorderState, name: string, durationMs: number, attributes: Record<string, unknown>): void {
  const end = state.clock.now();
  const parent = onlyOpenPass(state)?.context ?? ROOT_CONTEXT;
  const startTime = new Date(end - Math.max(0, Number.isFinite(durationMs) ? durationMs : 0));
  const span = state.tracer.startSpan(
    name,
    { kind: SpanKind.CLIENT, startTime, attributes: filterSpanAttributes({ 'db.system': 'postgresql', ...attributes }) },
    parent,
  );
  span.end(new Date(end));
}

/** `mana_ai.refresh`: one snapshot refresh (the projection's `refresh.done`), counts only. */
function refreshDone(state: RecorderState, payload: TracedEvents['refresh.done']): void {
  databaseSpan(state, SPAN_NAMES.refresh, payload.durationMs, {
    'refresh.skipped': payload.skipped,
    'refresh.completed': payload.completed,
    'refresh.batches': payload.batches,
    'refresh.rows_read': payload.rowsRead,
    'refresh.rows_applied': payload.rowsApplied,
    'refresh.rows_already_applied': payload.rowsAlreadyApplied,
    'refresh.rows_ignored': payload.rowsIgnored,
    'refresh.bad_rows': payload.badRows,
    'refresh.new_snapshots': payload.newSnapshots,
    'refresh.updated_snapshots': payload.updatedSnapshots,
    'refresh.deleted_snapshots': payload.deletedSnapshots,
  });
}

/** `mana_ai.claim`: one claim of due missions (the projection's `missions.claimed`), counts only. */
function missionsClaimed(state: RecorderState, payload: TracedEvents['missions.claimed']): void {
  databaseSpan(state, SPAN_NAMES.claim, payload.durationMs, { 'claim.limit': payload.limit, 'claim.claimed': payload.claimed });
}

function passFailed(state: RecorderState, payload: TracedEvents['tick.failed']): void {
  // The message may quote SQL or driver text: only the stage (an enum) is recorded.
  const pass = onlyOpenPass(state);
  if (!pass) return;
  pass.failedStage = enumToken(payload.stage);
  setAttributes(pass.span, { 'tick.failed_stage': pass.failedStage });
}

function passFinished(state: RecorderState, payload: TracedEvents['tick.finished']): void {
  const pass = state.passes.get(payload.passId);
  if (!pass) return;
  const { stats } = payload;
  setAttributes(pass.span, {
    'tick.due_missions': stats.dueMissionCount,
    'tick.plans_produced': stats.plansProduced,
    'tick.plans_written': stats.plansWrittenBack,
    'tick.parse_failures': stats.parseFailures,
    'tick.errors': stats.errors.length,
    'tick.skipped': Object.values(stats.skipped).reduce((sum, count) => sum + (count ?? 0), 0),
    'tick.duration_ms': payload.durationMs,
  });
  endPass(state, payload.passId);
}


function runClaimed(state: RecorderState, payload: TracedEvents['mission.claimed']): void {
  const { runId, missionId, userId, agentId, passId } = payload;
  endRun(state, runId, 'unfinished', 'claimed again before the run ended');
  evictOldest(state.runs, MAX_OPEN_RUNS, (oldest) => endRun(state, oldest, 'unfinished', 'evicted: too many open missions'));
  // A pass's run is a child of its pass; a run of the continuous dispatcher (or of a pass whose span
  // is gone) is a trace of its own.
  const pass = passId === null ? undefined : state.passes.get(passId);
  const span = startSpan(state, SPAN_NAMES.mission, pass ? pass.context : ROOT_CONTEXT, {
    'mission.id': missionId,
    'mission.run_id': runId,
    'user.id': userId,
    'agent.id': agentId ?? undefined,
  });
  state.runs.set(runId, {
    span,
    context: trace.setSpan(ROOT_CONTEXT, span),
    ids: { runId, missionId, userId, agentId },
    passId,
    llmCalls: new Set(),
  });
  state.runOfMission.set(missionKey(userId, missionId), runId);
}

function runSkipped(state: RecorderState, payload: TracedEvents['mission.skipped']): void {
  const run = state.runs.get(payload.runId);
  if (run) setAttributes(run.span, { 'mission.skip_reason': payload.reason });
}

/**
 * The write-back span opens on `mission.planned`, under the run's span found by its run id, and ends
 * on `mission.written` or `mission.error` (or with the run). The projection's `iteration.written`
 * names no run: it adds its attributes to the write-back span of the mission's open run, if any.
 */
function runPlanned(state: RecorderState, payload: TracedEvents['mission.planned']): void {
  const run = state.runs.get(payload.runId);
  if (!run) return;
  setAttributes(run.span, { 'mission.steps': payload.steps, 'mission.rounds': payload.rounds, 'mission.tokens': payload.tokens });
  endWriteBack(state, run, 'superseded by a later plan of the run');
  run.writeBack = startSpan(state, SPAN_NAMES.writeBack, run.context, {
    'mission.id': payload.missionId,
    'mission.run_id': payload.runId,
    'user.id': payload.userId,
    'write_back.steps': payload.steps,
  });
}

function runPlanFailed(state: RecorderState, payload: TracedEvents['mission.plan-failed']): void {
  // `reason` is free text from the planner: never recorded.
  const run = state.runs.get(payload.runId);
  if (!run) return;
  setAttributes(run.span, { 'mission.tokens': payload.tokens });
  run.failure = 'planner loop failed';
}

function iterationWritten(state: RecorderState, payload: TracedEvents['iteration.written']): void {
  const writeBack = runOfMission(state, payload.userId, payload.missionId)?.writeBack;
  if (!writeBack) return;
  setAttributes(writeBack, {
    'mission.iteration_id': payload.iterationId,
    'write_back.duplicate': payload.duplicate,
    'write_back.steps': payload.steps,
  });
}

function runWritten(state: RecorderState, payload: TracedEvents['mission.written']): void {
  const run = state.runs.get(payload.runId);
  if (!run) return;
  run.written = payload.written;
  setAttributes(run.span, { 'mission.iteration_id': payload.iterationId });
  if (run.writeBack) setAttributes(run.writeBack, { 'mission.iteration_id': payload.iterationId, 'write_back.written': payload.written });
  endWriteBack(state, run);
}

function runFailed(state: RecorderState, payload: TracedEvents['mission.error']): void {
  // The message may carry decrypted input or LLM output: only the stage (an enum) is recorded.
  const run = state.runs.get(payload.runId);
  if (!run) return;
  setAttributes(run.span, { 'mission.error_stage': payload.stage });
  run.failure = `mission failed in stage ${enumToken(payload.stage)}`;
  endWriteBack(state, run, run.failure);
}

function runFinished(state: RecorderState, payload: TracedEvents['mission.finished']): void {
  const run = state.runs.get(payload.runId);
  if (!run) return;
  const { outcome } = payload;
  if (run.failure === undefined && (outcome === 'error' || outcome === 'plan-failed')) run.failure = `mission ended with outcome ${outcome}`;
  endRun(state, payload.runId, outcome === 'written' && run.written === false ? 'duplicate' : outcome);
}

/** A research step of a running mission, as an event on its run's span (ids, counts and enums only). */
function researchStep(state: RecorderState, name: ResearchSpanEvent, payload: ResearchEvents[ResearchSpanEvent]): void {
  const run = runOfMission(state, payload.userId, payload.missionId);
  if (!run) return;
  const fields: ResearchFields = payload;
  // `status` is an outcome enum on research.shallow and an HTTP status on research.submit-failed.
  const { status } = fields;
  run.span.addEvent(
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
    now(state),
  );
}


/**
 * An LLM call is a child of the run its context names. Without a run id, or when that run has
 * ended (a call outliving its run), no span is recorded: none rather than one under a wrong parent.
 */
function llmCallStarted(state: RecorderState, payload: TracedEvents['planner.llm-call.started']): void {
  const { runId } = payload.context;
  const run = runId === undefined ? undefined : state.runs.get(runId);
  if (runId === undefined || !run) return;
  const key = llmCallKey(runId, payload.purpose, payload.round);
  endLlmCall(state, key, 'superseded by a call with the same round');
  evictOldest(state.llmCalls, MAX_OPEN_LLM_CALLS, (oldest) => endLlmCall(state, oldest, 'evicted: too many open LLM calls'));
  const span = startSpan(
    state,
    SPAN_NAMES.llmCall,
    run.context,
    {
      'mission.id': run.ids.missionId,
      'mission.run_id': runId,
      'agent.id': run.ids.agentId ?? undefined,
      'llm.purpose': payload.purpose,
      'llm.round': payload.round,
      'gen_ai.request.model': payload.model,
      'llm.message_count': payload.messageCount,
      'llm.tool_count': payload.toolCount,
    },
    SpanKind.CLIENT,
  );
  state.llmCalls.set(key, { span, runId });
  run.llmCalls.add(key);
}

function openLlmCall(state: RecorderState, payload: TracedEvents['planner.llm-call.finished' | 'planner.provider-error']): [string, OpenLlmCall] | undefined {
  const { runId } = payload.context;
  if (runId === undefined) return undefined;
  const key = llmCallKey(runId, payload.purpose, payload.round);
  const call = state.llmCalls.get(key);
  return call ? [key, call] : undefined;
}

function llmCallFinished(state: RecorderState, payload: TracedEvents['planner.llm-call.finished']): void {
  const open = openLlmCall(state, payload);
  if (!open) return;
  const [key, call] = open;
  setAttributes(call.span, {
    'llm.duration_ms': payload.durationMs,
    'gen_ai.response.finish_reason': payload.finishReason,
    'llm.tool_call_count': payload.toolCallCount,
    'gen_ai.usage.input_tokens': payload.usage?.promptTokens,
    'gen_ai.usage.output_tokens': payload.usage?.completionTokens,
    'llm.total_tokens': payload.usage?.totalTokens,
  });
  endLlmCall(state, key);
}

function llmCallFailed(state: RecorderState, payload: TracedEvents['planner.provider-error']): void {
  const open = openLlmCall(state, payload);
  if (!open) return;
  const [key, call] = open;
  setAttributes(call.span, {
    'llm.provider': payload.provider,
    'error.type': payload.kind,
    'http.response.status_code': payload.status,
    'llm.attempts': payload.attempts,
    'llm.duration_ms': payload.durationMs,
  });
  endLlmCall(state, key, `provider error: ${enumToken(payload.kind)}`);
}

function plannerRunFinished(state: RecorderState, payload: TracedEvents['planner.run.finished']): void {
  const { runId } = payload.context;
  const run = runId === undefined ? undefined : state.runs.get(runId);
  if (!run) return;
  setAttributes(run.span, {
    'planner.stop_reason': payload.stopReason,
    'planner.recorded_calls': payload.recordedCalls,
    'planner.rejected_calls': payload.rejectedCalls,
  });
}

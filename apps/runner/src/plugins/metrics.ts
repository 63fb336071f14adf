import { AGENT_DECISIONS, SKIP_REASONS } from '@mana-ai/core';
import type { GrantUnwrapFailureReason } from '@mana-ai/crypto';
import { MALFORMED_ENTRY_REASONS, MISSION_ENTRY_FIELDS } from '@mana-ai/projection';
import { INPUT_TABLES, type InputsDroppedReason } from '@mana-ai/resolvers';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { LLM_OUTPUT_LIMIT_REASONS } from '@mana-ai/planner';
import { DEEP_RESEARCH_PROVIDERS } from '@mana-ai/research';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { OTHER_LABEL } from '../event-metrics.js';

/**
 * `values`, checked at compile time to name every member of `T`: a label value added to a package's
 * union without being added here fails the build instead of leaving its series uninitialised.
 */
function everyValueOf<T extends string>() {
  return <const V extends readonly T[]>(values: V & ([Exclude<T, V[number]>] extends [never] ? unknown : { missing: Exclude<T, V[number]> })): readonly T[] =>
    values;
}

// The label values of the counters initialised at 0 (closed sets; see event-metrics.ts for the mapping);
// agent decisions and skip reasons are core's AGENT_DECISIONS and SKIP_REASONS.
/** Every reason of `mana_ai_inputs_dropped_total`. */
const INPUTS_DROPPED_REASONS = everyValueOf<InputsDroppedReason>()(['max-inputs-per-mission']);
// The resolvers add `unwrap-error` for an unwrap that threw.
const GRANT_SKIP_REASONS = [...everyValueOf<GrantUnwrapFailureReason>()(['not-configured', 'expired', 'malformed', 'wrap-rejected']), 'unwrap-error'];
const TABLES = [...INPUT_TABLES, OTHER_LABEL];
const RESEARCH_PROVIDERS = [...DEEP_RESEARCH_PROVIDERS, OTHER_LABEL];
const TICK_STAGES = ['refresh', 'claim'];
const LEASE_OUTCOMES = ['renewed', 'lost', 'failed'];

/** The `path` label of requests that matched no route (raw URLs would explode cardinality). */
export const UNMATCHED_PATH = 'unmatched';

/** The runner's Prometheus registry and the metrics the host itself records (docs/wire-contract.md#metrics). */
export interface RunnerMetrics {
  /** This app's registry; register further metrics here, never on the global one. */
  registry: Registry;
  /** `mana_ai_http_requests_total{method,path,status}`. */
  httpRequests: Counter<'method' | 'path' | 'status'>;
  /** `mana_ai_http_request_duration_seconds{method,path,status}`. */
  httpRequestDuration: Histogram<'method' | 'path' | 'status'>;
  /** `mana_ai_ticks_total`: each pass (POST /internal/tick, `tick --once`) started. */
  ticks: Counter;
  /** `mana_ai_tick_duration_seconds`: each pass, from start to its last run's end. */
  tickDuration: Histogram;
  /** `mana_ai_plans_produced_total`: planner loops that completed. */
  plansProduced: Counter;
  /** `mana_ai_plans_written_back_total`: iterations written (retried duplicates excluded). */
  plansWrittenBack: Counter;
  /** `mana_ai_write_back_fast_refused_total`: first write-backs from the claimed snapshot that were refused and read the mission instead. */
  writeBackFastRefused: Counter;
  /** `mana_ai_parse_failures_total`: planner loops that failed (LLM unreachable, timeouts, errors). */
  parseFailures: Counter;
  /** `mana_ai_mission_errors_total`: missions whose run threw. */
  missionErrors: Counter;
  /** `mana_ai_research_jobs_submitted_total{provider}`. */
  researchSubmitted: Counter<'provider'>;
  /** `mana_ai_research_jobs_completed_total{provider}`. */
  researchCompleted: Counter<'provider'>;
  /** `mana_ai_research_jobs_failed_total{provider}`. */
  researchFailed: Counter<'provider'>;
  /** `mana_ai_research_jobs_pending_skips_total`. */
  researchPendingSkips: Counter;
  /** `mana_ai_planner_request_duration_seconds`: every LLM request, answered or failed. */
  plannerRequestDuration: Histogram;
  /** `mana_ai_snapshots_new_total`. */
  snapshotsNew: Counter;
  /** `mana_ai_snapshots_updated_total`. */
  snapshotsUpdated: Counter;
  /** `mana_ai_snapshot_rows_applied_total`. */
  snapshotRowsApplied: Counter;
  /** `mana_ai_snapshot_bad_rows_total`: log rows the projection skipped as malformed. */
  snapshotBadRows: Counter;
  /** `mana_ai_mission_entries_skipped_total{field,reason}`: malformed `inputs`/`iterations` entries left out of claimed missions. */
  missionEntriesSkipped: Counter<'field' | 'reason'>;
  /** `mana_ai_decrypts_total{table}`: decrypted fields. */
  decrypts: Counter<'table'>;
  /** `mana_ai_grant_scope_violations_total{table}`. */
  grantScopeViolations: Counter<'table'>;
  /** `mana_ai_grant_skips_total{reason}`. */
  grantSkips: Counter<'reason'>;
  /** `mana_ai_inputs_dropped_total{reason}`: inputs of missions left unresolved (`max-inputs-per-mission`). */
  inputsDropped: Counter<'reason'>;
  /** `mana_ai_agent_decisions_total{decision}`. */
  agentDecisions: Counter<'decision'>;
  /** `mana_ai_tokens_used_total{agent_id}`. */
  tokensUsed: Counter<'agent_id'>;
  /** `mana_ai_tool_calls_total{tool,policy,outcome}`. */
  toolCalls: Counter<'tool' | 'policy' | 'outcome'>;
  /** `mana_ai_planner_rounds`: rounds of each successful planner loop. */
  plannerRounds: Histogram;
  /** `mana_ai_provider_errors_total{provider,kind}`. */
  providerErrors: Counter<'provider' | 'kind'>;
  /** `mana_ai_llm_output_limited_total{reason}`: LLM answers the planner limited (DESIGN §6), by reason. */
  llmOutputLimited: Counter<'reason'>;
  /** `mana_ai_reminders_emitted_total{producer,severity}`. */
  remindersEmitted: Counter<'producer' | 'severity'>;
  /** `mana_ai_compactions_triggered_total`. */
  compactionsTriggered: Counter;
  /** `mana_ai_compacted_turns`. */
  compactedTurns: Histogram;
  /** `mana_ai_missions_skipped_total{reason}`: skipped missions by reason (gates, ciphertext, research). */
  missionsSkipped: Counter<'reason'>;
  /** `mana_ai_tick_errors_total{stage}`: refreshes or claims that failed. */
  tickErrors: Counter<'stage'>;
  /** `mana_ai_lease_renewals_total{outcome}`: lease heartbeat results per mission (renewed, lost, failed). */
  leaseRenewals: Counter<'outcome'>;
  /** `mana_ai_expired_leases`: due missions whose lease ran out unreleased, sampled after dispatcher cycles and passes. */
  expiredLeases: Gauge;
  /** `mana_ai_feed_lag_seconds`: how far the oldest open transaction holds the refresh back, sampled after dispatcher cycles and passes. */
  feedLag: Gauge;
  /** `mana_ai_missions_in_flight`: missions this instance is running now. */
  missionsInFlight: Gauge;
  /** `mana_ai_last_tick_timestamp_seconds`: when this instance's last dispatcher cycle or pass ended. */
  lastTickTimestamp: Gauge;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The runner's metrics (see RunnerMetrics). */
    metrics: RunnerMetrics;
  }
}

/** Sampling interval of the `mana_ai_nodejs_eventloop_lag_*` monitor, in ms. */
export const EVENT_LOOP_SAMPLE_MS = 100;

/** Creates a registry with `service="mana-ai"` on every series, the default metrics and the host metrics. */
export function createRunnerMetrics(): RunnerMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service: 'mana-ai' });
  // The event-loop delay monitor samples every 100 ms instead of prom-client's 10 ms: a timer firing
  // 100 times a second alone costs an idle runner ~0.8 % of a core (DESIGN §5: ≤ 1 % when idle).
  collectDefaultMetrics({ register: registry, prefix: 'mana_ai_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  const registers = [registry];
  function counter(name: string, help: string): Counter;
  function counter<Label extends string>(name: string, help: string, labelNames: readonly Label[]): Counter<Label>;
  function counter(name: string, help: string, labelNames: readonly string[] = []): Counter<string> {
    return new Counter({ name, help, labelNames, registers });
  }
  const histogram = (name: string, help: string, buckets: number[]): Histogram => new Histogram({ name, help, buckets, registers });
  const gauge = (name: string, help: string): Gauge => new Gauge({ name, help, registers });
  // Every label set a counter can take is exported at 0, so a dashboard shows 0 and not "No data"
  // and increase() sees a series' first increment (ManaAIGrantScopeViolation).
  const initialised = <Label extends string>(metric: Counter<Label>, labelSets: readonly Record<Label, string>[]): Counter<Label> => {
    for (const labels of labelSets) metric.inc(labels, 0);
    return metric;
  };
  const researchCounter = (name: string, help: string): Counter<'provider'> =>
    initialised(
      counter(name, help, ['provider']),
      RESEARCH_PROVIDERS.map((provider) => ({ provider })),
    );
  return {
    registry,
    httpRequests: counter('mana_ai_http_requests_total', 'HTTP requests by method, route pattern and status.', ['method', 'path', 'status']),
    httpRequestDuration: new Histogram({
      name: 'mana_ai_http_request_duration_seconds',
      help: 'HTTP request duration in seconds by method, route pattern and status.',
      labelNames: ['method', 'path', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    ticks: counter('mana_ai_ticks_total', 'Passes started (POST /internal/tick and tick --once; overlap-skipped calls excluded).'),
    tickDuration: histogram('mana_ai_tick_duration_seconds', 'Pass duration in seconds.', [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120]),
    plansProduced: counter('mana_ai_plans_produced_total', 'Planner loops that completed with a plan.'),
    plansWrittenBack: counter('mana_ai_plans_written_back_total', 'Iterations written back to the sync log.'),
    writeBackFastRefused: counter(
      'mana_ai_write_back_fast_refused_total',
      'Write-backs whose one-statement write from the claimed snapshot was refused (the mission changed since its claim) and that read the mission first.',
    ),
    parseFailures: counter('mana_ai_parse_failures_total', 'Planner loops that failed (LLM unreachable, timeout, error answer).'),
    missionErrors: counter('mana_ai_mission_errors_total', 'Mission runs that threw.'),
    researchSubmitted: researchCounter('mana_ai_research_jobs_submitted_total', 'Deep-research jobs submitted.'),
    researchCompleted: researchCounter('mana_ai_research_jobs_completed_total', 'Deep-research jobs that completed.'),
    researchFailed: researchCounter('mana_ai_research_jobs_failed_total', 'Deep-research jobs that failed or were given up.'),
    researchPendingSkips: counter('mana_ai_research_jobs_pending_skips_total', 'Missions skipped while their deep-research job runs.'),
    plannerRequestDuration: histogram('mana_ai_planner_request_duration_seconds', 'Duration of LLM requests of the planner in seconds (answered or failed, retries included).', [0.25, 0.5, 1, 2, 5, 10, 30, 60]),
    snapshotsNew: counter('mana_ai_snapshots_new_total', 'Mission snapshots created by the refresh.'),
    snapshotsUpdated: counter('mana_ai_snapshots_updated_total', 'Mission snapshots updated by the refresh.'),
    snapshotRowsApplied: counter('mana_ai_snapshot_rows_applied_total', 'Log rows applied to snapshots.'),
    snapshotBadRows: counter('mana_ai_snapshot_bad_rows_total', 'Log rows skipped by the refresh as malformed.'),
    missionEntriesSkipped: initialised(
      counter('mana_ai_mission_entries_skipped_total', 'Malformed entries of a claimed mission\'s inputs or iterations left out of its run, by field and reason.', ['field', 'reason']),
      MISSION_ENTRY_FIELDS.flatMap((field) => MALFORMED_ENTRY_REASONS.map((reason) => ({ field, reason }))),
    ),
    decrypts: initialised(
      counter('mana_ai_decrypts_total', 'Fields decrypted for planning, by table.', ['table']),
      TABLES.map((table) => ({ table })),
    ),
    grantScopeViolations: initialised(
      counter('mana_ai_grant_scope_violations_total', 'Inputs outside their grant, by table.', ['table']),
      TABLES.map((table) => ({ table })),
    ),
    grantSkips: initialised(
      counter('mana_ai_grant_skips_total', 'Grants that could not be used, by reason.', ['reason']),
      GRANT_SKIP_REASONS.map((reason) => ({ reason })),
    ),
    inputsDropped: initialised(
      counter('mana_ai_inputs_dropped_total', 'Inputs of missions left unresolved (not read, decrypted or audited), by reason.', ['reason']),
      INPUTS_DROPPED_REASONS.map((reason) => ({ reason })),
    ),
    agentDecisions: initialised(
      counter('mana_ai_agent_decisions_total', 'Agent gate decisions.', ['decision']),
      AGENT_DECISIONS.map((decision) => ({ decision })),
    ),
    tokensUsed: counter('mana_ai_tokens_used_total', 'LLM tokens used, by agent.', ['agent_id']),
    toolCalls: counter('mana_ai_tool_calls_total', 'Tool calls recorded as plan steps.', ['tool', 'policy', 'outcome']),
    plannerRounds: histogram('mana_ai_planner_rounds', 'Rounds of successful planner loops.', [1, 2, 3, 4, 5]),
    providerErrors: counter('mana_ai_provider_errors_total', 'LLM provider failures, by kind.', ['provider', 'kind']),
    llmOutputLimited: initialised(
      counter(
        'mana_ai_llm_output_limited_total',
        'LLM answers the planner limited (DESIGN §6), by reason: response-too-large, too-many-tool-calls, arguments-too-large, summary-too-long, answer-truncated, usage-missing.',
        ['reason'],
      ),
      LLM_OUTPUT_LIMIT_REASONS.map((reason) => ({ reason })),
    ),
    remindersEmitted: counter('mana_ai_reminders_emitted_total', 'Reminders added to planner requests.', ['producer', 'severity']),
    compactionsTriggered: counter('mana_ai_compactions_triggered_total', 'Planner compactions that folded at least one turn.'),
    compactedTurns: histogram('mana_ai_compacted_turns', 'Messages folded per compaction.', [1, 2, 4, 8, 16, 32, 64, 128]),
    missionsSkipped: initialised(
      counter('mana_ai_missions_skipped_total', 'Claimed missions skipped, by reason.', ['reason']),
      SKIP_REASONS.map((reason) => ({ reason })),
    ),
    tickErrors: initialised(
      counter('mana_ai_tick_errors_total', 'Snapshot refreshes or claims that failed, by stage (refresh or claim).', ['stage']),
      TICK_STAGES.map((stage) => ({ stage })),
    ),
    leaseRenewals: initialised(
      counter(
        'mana_ai_lease_renewals_total',
        'Lease heartbeat results per mission: renewed, lost (no longer held: expired and taken) or failed (database error).',
        ['outcome'],
      ),
      LEASE_OUTCOMES.map((outcome) => ({ outcome })),
    ),
    expiredLeases: gauge('mana_ai_expired_leases', 'Due missions whose lease ran out without release and that nobody took over (sampled after dispatcher cycles and passes).'),
    feedLag: gauge(
      'mana_ai_feed_lag_seconds',
      'Seconds the snapshot refresh is held back by the oldest transaction open in the database (sampled after dispatcher cycles and passes).',
    ),
    missionsInFlight: gauge('mana_ai_missions_in_flight', 'Missions this instance is running now.'),
    lastTickTimestamp: gauge('mana_ai_last_tick_timestamp_seconds', 'Unix time at which the last dispatcher cycle or pass of this instance ended.'),
  };
}

async function metricsPlugin(app: FastifyInstance): Promise<void> {
  const metrics = createRunnerMetrics();
  app.decorate('metrics', metrics);
  app.addHook('onResponse', async (request, reply) => {
    const labels = { method: request.method, path: request.routeOptions.url ?? UNMATCHED_PATH, status: String(reply.statusCode) };
    metrics.httpRequests.inc(labels);
    metrics.httpRequestDuration.observe(labels, reply.elapsedTime / 1000);
  });
  app.addHook('onClose', async () => {
    metrics.registry.clear();
  });
}

/** Decorates `metrics` and records every request in the HTTP metrics. */
export default fp(metricsPlugin, { name: 'mana-ai-metrics', fastify: '5.x' });

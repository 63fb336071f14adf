import {
  type Clock,
  DEFAULT_AGENT_ID,
  type EventChannel,
  type Logger,
  type ManaAiEvents,
  type PolicyDecision,
  describeError,
} from '@mana-ai/core';
import { PROVIDER_ERROR_KINDS } from '@mana-ai/planner';
import type { Projection } from '@mana-ai/projection';
import { DEEP_RESEARCH_PROVIDERS } from '@mana-ai/research';
import { INPUT_TABLES } from '@mana-ai/resolvers';
import type { RunnerMetrics } from './plugins/metrics.js';

/**
 * Every event the runner listens to: core's dispatcher events and each package's own, merged into
 * {@link ManaAiEvents} by the packages themselves (importing them brings their slices in).
 */
export type RunnerEvents = ManaAiEvents;

// Label values of rejected or unknown tools could be anything the model invents: never a label.
const TOOL_CALL_OUTCOME = 'deferred';

/** The label value standing in for any value a user chose (a table, an agent id, a policy word). */
export const OTHER_LABEL = 'other';

const KNOWN_TABLES: ReadonlySet<string> = new Set(INPUT_TABLES);
const POLICY_DECISIONS: ReadonlySet<string> = new Set<PolicyDecision>(['auto', 'propose', 'deny']);
const RESEARCH_PROVIDERS: ReadonlySet<string> = new Set(DEEP_RESEARCH_PROVIDERS);

/** The `table` label of a mission input's table: a built-in input table, else `other`. */
export function tableLabel(table: string): string {
  return KNOWN_TABLES.has(table) ? table : OTHER_LABEL;
}

/**
 * The `agent_id` label: agent ids are chosen by the user's devices (one user could mint thousands),
 * so only the default agent of legacy missions keeps its id; every other agent is `other`. Spend per
 * agent is in `mana_ai.token_usage`.
 */
export function agentLabel(agentId: string): string {
  return agentId === DEFAULT_AGENT_ID ? agentId : OTHER_LABEL;
}

/** The `policy` label: a policy decision, else `other` (an agent's policy record may hold any text). */
export function policyLabel(policy: string): string {
  return POLICY_DECISIONS.has(policy) ? policy : OTHER_LABEL;
}

/** The research counters' `provider` label: a provider mana-research accepts, else `other` (the id comes from its answers). */
export function researchProviderLabel(provider: string): string {
  return RESEARCH_PROVIDERS.has(provider) ? provider : OTHER_LABEL;
}

/** What {@link observeEvents} needs besides the events. */
export interface ObserveEventsOptions {
  /** This instance's LLM provider label (the planner adapter's `provider`): its `mana_ai_provider_errors_total` series start at 0. */
  llmProvider?: string;
}

/**
 * Feeds the metrics of docs/wire-contract.md#metrics (and the runner's own) from package events. Returns the
 * function that unsubscribes. No label takes a value a user chose (DESIGN §6): tables, agent ids,
 * policy words and research providers are mapped to a fixed set first.
 */
export function observeEvents(events: EventChannel<RunnerEvents>, metrics: RunnerMetrics, clock: Clock, options: ObserveEventsOptions = {}): () => void {
  const { llmProvider } = options;
  if (llmProvider !== undefined) for (const kind of PROVIDER_ERROR_KINDS) metrics.providerErrors.inc({ provider: llmProvider, kind }, 0);
  const subscriptions = [
    events.on('tick.started', () => metrics.ticks.inc()),
    events.on('tick.refreshed', (refresh) => {
      metrics.snapshotsNew.inc(refresh.newSnapshots);
      metrics.snapshotsUpdated.inc(refresh.updatedSnapshots);
      metrics.snapshotRowsApplied.inc(refresh.rowsApplied);
    }),
    events.on('tick.failed', ({ stage }) => metrics.tickErrors.inc({ stage })),
    events.on('leases.renewed', ({ held, lost }) => {
      metrics.leaseRenewals.inc({ outcome: 'renewed' }, held);
      if (lost > 0) metrics.leaseRenewals.inc({ outcome: 'lost' }, lost);
    }),
    events.on('leases.renew-failed', ({ requested }) => metrics.leaseRenewals.inc({ outcome: 'failed' }, requested)),
    events.on('tick.finished', ({ durationMs }) => {
      metrics.tickDuration.observe(durationMs / 1000);
      metrics.lastTickTimestamp.set(clock.now() / 1000);
    }),
    // A dispatcher that cycles is alive: ManaAITickStalled fires when neither cycles nor passes end.
    events.on('dispatcher.cycle', () => metrics.lastTickTimestamp.set(clock.now() / 1000)),
    events.on('mission.claimed', () => metrics.missionsInFlight.inc()),
    events.on('mission.finished', () => metrics.missionsInFlight.dec()),
    events.on('mission.skipped', ({ reason }) => metrics.missionsSkipped.inc({ reason })),
    events.on('agent.decision', ({ decision }) => metrics.agentDecisions.inc({ decision })),
    events.on('mission.planned', ({ rounds }) => {
      metrics.plansProduced.inc();
      metrics.plannerRounds.observe(rounds);
    }),
    events.on('mission.plan-failed', () => metrics.parseFailures.inc()),
    events.on('mission.written', ({ written }) => {
      if (written) metrics.plansWrittenBack.inc();
    }),
    events.on('write-back.fast-refused', () => metrics.writeBackFastRefused.inc()),
    events.on('mission.error', () => metrics.missionErrors.inc()),
    events.on('tokens.used', ({ agentId, tokens }) => metrics.tokensUsed.inc({ agent_id: agentLabel(agentId) }, tokens)),
    events.on('row.skipped', () => metrics.snapshotBadRows.inc()),
    events.on('entry.skipped', ({ field, reason }) => metrics.missionEntriesSkipped.inc({ field, reason })),
    events.on('planner.llm-call.finished', ({ durationMs }) => metrics.plannerRequestDuration.observe(durationMs / 1000)),
    events.on('planner.provider-error', ({ provider, kind, durationMs }) => {
      metrics.plannerRequestDuration.observe(durationMs / 1000);
      metrics.providerErrors.inc({ provider, kind });
    }),
    events.on('planner.llm-output.limited', ({ reason }) => metrics.llmOutputLimited.inc({ reason })),
    events.on('planner.tool-call.recorded', ({ tool, policy }) => metrics.toolCalls.inc({ tool, policy: policyLabel(policy), outcome: TOOL_CALL_OUTCOME })),
    events.on('planner.reminder.emitted', ({ producer, severity }) => metrics.remindersEmitted.inc({ producer, severity })),
    events.on('planner.compaction', ({ compactedTurns }) => {
      if (compactedTurns < 1) return;
      metrics.compactionsTriggered.inc();
      metrics.compactedTurns.observe(compactedTurns);
    }),
    events.on('research.submitted', ({ provider }) => metrics.researchSubmitted.inc({ provider: researchProviderLabel(provider) })),
    events.on('research.completed', ({ provider }) => metrics.researchCompleted.inc({ provider: researchProviderLabel(provider) })),
    events.on('research.failed', ({ provider }) => metrics.researchFailed.inc({ provider: researchProviderLabel(provider) })),
    events.on('research.pending-skip', () => metrics.researchPendingSkips.inc()),
    events.on('decrypt.succeeded', ({ table, fields }) => metrics.decrypts.inc({ table: tableLabel(table) }, fields)),
    events.on('grant.scope-violation', ({ table }) => metrics.grantScopeViolations.inc({ table: tableLabel(table) })),
    events.on('grant.skipped', ({ reason }) => metrics.grantSkips.inc({ reason })),
    events.on('inputs.dropped', ({ reason, dropped }) => metrics.inputsDropped.inc({ reason }, dropped)),
  ];
  return () => {
    for (const unsubscribe of subscriptions) unsubscribe();
  };
}

/** Lease and feed-lag gauges are sampled at most this often after dispatcher cycles (always after a pass). */
export const GAUGE_SAMPLE_MS = 15_000;

/**
 * Samples the database gauges (`mana_ai_expired_leases`, `mana_ai_feed_lag_seconds`) after
 * dispatcher cycles (at most every {@link GAUGE_SAMPLE_MS}) and after every pass, never on scrape:
 * /metrics must not depend on the database. Returns the function that stops sampling.
 */
export function sampleGauges(deps: {
  projection: Pick<Projection, 'leaseStats' | 'feedLag'>;
  metrics: RunnerMetrics;
  events: EventChannel<RunnerEvents>;
  clock: Clock;
  logger: Logger;
}): () => void {
  const { projection, metrics, clock, logger } = deps;
  let feedLagUnavailable = false;
  let lastSample = Number.NEGATIVE_INFINITY;
  const sample = (force: boolean): void => {
    const now = clock.now();
    if (!force && now - lastSample < GAUGE_SAMPLE_MS) return;
    lastSample = now;
    projection.leaseStats().then(
      (stats) => metrics.expiredLeases.set(stats.expired),
      (error: unknown) => logger.warn({ err: describeError(error) }, 'lease stats unavailable'),
    );
    projection.feedLag().then(
      (seconds) => {
        metrics.feedLag.set(seconds);
        feedLagUnavailable = false;
      },
      (error: unknown) => {
        // NaN, not the last value: a stale lag must not keep ManaAIRefreshHeldBack firing.
        metrics.feedLag.set(Number.NaN);
        // Logged once per outage (a database without migration projection/0004 fails every time).
        if (!feedLagUnavailable) logger.warn({ err: describeError(error) }, 'feed lag unavailable');
        feedLagUnavailable = true;
      },
    );
  };
  const stops = [deps.events.on('dispatcher.cycle', () => sample(false)), deps.events.on('tick.finished', () => sample(true))];
  return () => {
    for (const stop of stops) stop();
  };
}

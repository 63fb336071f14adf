import type { Clock, EventChannel, ManaAiEvents } from '@mana-ai/core';
import type { RunnerMetrics } from './plugins/metrics.js';

/**
 * Every event the runner listens to: core's dispatcher events and each package's own, merged into
 * {@link ManaAiEvents} by the packages themselves (importing them brings their slices in).
 */
export type RunnerEvents = ManaAiEvents;

// Label values of rejected or unknown tools could be anything the model invents: never a label.
const TOOL_CALL_OUTCOME = 'deferred';

/**
 * Feeds the metrics of UPSTREAM §12.4 (and the runner's own) from package events. Returns the
 * function that unsubscribes. Payloads carry ids, counts and enums only; no label takes user text.
 */
export function observeEvents(events: EventChannel<RunnerEvents>, metrics: RunnerMetrics, clock: Clock): () => void {
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
    events.on('mission.error', () => metrics.missionErrors.inc()),
    events.on('tokens.used', ({ agentId, tokens }) => metrics.tokensUsed.inc({ agent_id: agentId }, tokens)),
    events.on('row.skipped', () => metrics.snapshotBadRows.inc()),
    events.on('planner.llm-call.finished', ({ durationMs }) => metrics.plannerRequestDuration.observe(durationMs / 1000)),
    events.on('planner.provider-error', ({ provider, kind, durationMs }) => {
      metrics.plannerRequestDuration.observe(durationMs / 1000);
      metrics.providerErrors.inc({ provider, kind });
    }),
    events.on('planner.tool-call.recorded', ({ tool, policy }) => metrics.toolCalls.inc({ tool, policy, outcome: TOOL_CALL_OUTCOME })),
    events.on('planner.reminder.emitted', ({ producer, severity }) => metrics.remindersEmitted.inc({ producer, severity })),
    events.on('planner.compaction', ({ compactedTurns }) => {
      if (compactedTurns < 1) return;
      metrics.compactionsTriggered.inc();
      metrics.compactedTurns.observe(compactedTurns);
    }),
    events.on('research.submitted', ({ provider }) => metrics.researchSubmitted.inc({ provider })),
    events.on('research.completed', ({ provider }) => metrics.researchCompleted.inc({ provider })),
    events.on('research.failed', ({ provider }) => metrics.researchFailed.inc({ provider })),
    events.on('research.pending-skip', () => metrics.researchPendingSkips.inc()),
    events.on('decrypt.succeeded', ({ table, fields }) => metrics.decrypts.inc({ table }, fields)),
    events.on('grant.scope-violation', ({ table }) => metrics.grantScopeViolations.inc({ table })),
    events.on('grant.skipped', ({ reason }) => metrics.grantSkips.inc({ reason })),
  ];
  return () => {
    for (const unsubscribe of subscriptions) unsubscribe();
  };
}

import { type ManaAiEvents, type PolicyDecision, createEventBus, createManualClock } from '@mana-ai/core';
import { describe, expect, it } from 'vitest';
import { GAUGE_SAMPLE_MS, type RunnerEvents, observeEvents, sampleGauges } from './event-metrics.js';
import { createRunnerMetrics } from './plugins/metrics.js';

const ids = { runId: 'r-1', missionId: 'm-1', userId: 'u-1' };
const run = (runId: string, missionId: string, agentId: string | null = null) => ({ runId, missionId, userId: 'u-1', agentId });
const context = { missionId: 'm-1', agentId: 'a-1' };
const usage = { promptTokens: 10, completionTokens: 5, totalTokens: 15 };

function setup() {
  const bus = createEventBus<ManaAiEvents>();
  const metrics = createRunnerMetrics();
  const clock = createManualClock('2026-04-21T06:00:00.000Z');
  const stop = observeEvents(bus, metrics, clock);
  const emit = <Name extends keyof RunnerEvents>(name: Name, payload: RunnerEvents[Name]) => bus.emit(name, payload);
  const value = async (name: string, labels: Record<string, string> = {}): Promise<number | undefined> => {
    // Histogram samples live under the base name, each with its own `metricName` (_sum, _count, _bucket).
    const base = name.replace(/_(sum|count|bucket)$/, '');
    const metric = (await metrics.registry.getMetricsAsJSON()).find((entry) => entry.name === name || entry.name === base);
    const sample = metric?.values.find(
      (entry) =>
        ((entry as { metricName?: string }).metricName ?? metric.name) === name &&
        Object.entries(labels).every(([key, expected]) => String((entry.labels as Record<string, unknown>)[key]) === expected),
    );
    return sample?.value;
  };
  return { metrics, clock, stop, emit, value };
}

describe('observeEvents', () => {
  it('counts plans, failures, errors, skips and decisions when the dispatcher reports them', async () => {
    const { emit, value } = setup();
    emit('tick.refreshed', { rowsApplied: 7, newSnapshots: 2, updatedSnapshots: 3 });
    emit('mission.claimed', { ...ids, agentId: 'a-1', passId: null });
    emit('mission.planned', { ...ids, agentId: 'a-1', steps: 2, rounds: 3, tokens: 15 });
    emit('tokens.used', { agentId: 'a-1', userId: 'u-1', tokens: 15 });
    emit('mission.written', { ...ids, agentId: 'a-1', iterationId: 'i-1', written: true });
    emit('mission.written', { ...run('r-2', 'm-2'), iterationId: 'i-2', written: false });
    emit('agent.decision', { agentId: 'a-1', decision: 'ran' });
    emit('mission.skipped', { ...run('r-3', 'm-3', 'a-2'), reason: 'agent-paused' });
    emit('agent.decision', { agentId: 'a-2', decision: 'skipped-paused' });
    emit('mission.plan-failed', { ...run('r-4', 'm-4'), reason: 'llm-error: timeout', tokens: 0 });
    emit('mission.error', { ...run('r-5', 'm-5'), stage: 'write-back', message: 'boom' });
    emit('tick.failed', { stage: 'claim', message: 'db down' });

    expect(await value('mana_ai_snapshot_rows_applied_total')).toBe(7);
    expect(await value('mana_ai_snapshots_new_total')).toBe(2);
    expect(await value('mana_ai_snapshots_updated_total')).toBe(3);
    expect(await value('mana_ai_plans_produced_total')).toBe(1);
    expect(await value('mana_ai_planner_rounds_sum')).toBe(3);
    expect(await value('mana_ai_plans_written_back_total')).toBe(1);
    expect(await value('mana_ai_tokens_used_total', { agent_id: 'other' })).toBe(15);
    expect(await value('mana_ai_agent_decisions_total', { decision: 'ran' })).toBe(1);
    expect(await value('mana_ai_agent_decisions_total', { decision: 'skipped-paused' })).toBe(1);
    expect(await value('mana_ai_missions_skipped_total', { reason: 'agent-paused' })).toBe(1);
    expect(await value('mana_ai_parse_failures_total')).toBe(1);
    expect(await value('mana_ai_mission_errors_total')).toBe(1);
    expect(await value('mana_ai_tick_errors_total', { stage: 'claim' })).toBe(1);
  });

  it('counts the write-backs whose one-statement fast write was refused, from 0, when the projection reports them', async () => {
    const { emit, value } = setup();
    expect(await value('mana_ai_write_back_fast_refused_total')).toBe(0);
    emit('write-back.fast-refused', { userId: 'u-1', missionId: 'm-1', iterationId: 'i-1' });
    emit('write-back.fast-refused', { userId: 'u-2', missionId: 'm-2', iterationId: 'i-2' });
    emit('iteration.written', { userId: 'u-1', missionId: 'm-1', iterationId: 'i-1', duplicate: false, nextRunAt: null, nextRunAtWritten: true, steps: 0 });
    expect(await value('mana_ai_write_back_fast_refused_total')).toBe(2);
  });

  it('observes every LLM request duration, answered or failed, when the planner reports calls', async () => {
    const { emit, value } = setup();
    const call = { context, purpose: 'plan' as const, round: 1, model: 'mana/reasoning' };
    emit('planner.llm-call.finished', { ...call, durationMs: 400, usage, finishReason: 'tool_calls', toolCallCount: 1 });
    emit('planner.llm-call.finished', { ...call, round: 2, durationMs: 1600, usage, finishReason: 'stop', toolCallCount: 0 });
    emit('planner.provider-error', { ...call, provider: 'mana', kind: 'timeout', status: undefined, attempts: 3, durationMs: 3000 });
    expect(await value('mana_ai_planner_request_duration_seconds_count')).toBe(3);
    expect(await value('mana_ai_planner_request_duration_seconds_sum')).toBeCloseTo(5);
    expect(await value('mana_ai_planner_request_duration_seconds_bucket', { le: '0.5' })).toBe(1);
    expect(await value('mana_ai_planner_request_duration_seconds_bucket', { le: '2' })).toBe(2);
    expect(await value('mana_ai_provider_errors_total', { provider: 'mana', kind: 'timeout' })).toBe(1);
  });

  it('counts limited LLM output by reason, every reason starting at 0', async () => {
    const { emit, value } = setup();
    for (const reason of ['response-too-large', 'too-many-tool-calls', 'arguments-too-large', 'summary-too-long', 'answer-truncated', 'usage-missing']) {
      expect(await value('mana_ai_llm_output_limited_total', { reason })).toBe(0);
    }
    emit('planner.llm-output.limited', { context, round: 1, reason: 'too-many-tool-calls', limit: 50, actual: 500 });
    emit('planner.llm-output.limited', { context, round: 2, reason: 'answer-truncated' });
    emit('planner.llm-output.limited', { context, round: 2, reason: 'answer-truncated' });
    expect(await value('mana_ai_llm_output_limited_total', { reason: 'too-many-tool-calls' })).toBe(1);
    expect(await value('mana_ai_llm_output_limited_total', { reason: 'answer-truncated' })).toBe(2);
    expect(await value('mana_ai_llm_output_limited_total', { reason: 'usage-missing' })).toBe(0);
  });

  it('starts the provider errors of the instance\'s LLM provider and the research counters at 0, an unknown research provider as other', async () => {
    const bus = createEventBus<ManaAiEvents>();
    const metrics = createRunnerMetrics();
    observeEvents(bus, metrics, createManualClock('2026-04-21T06:00:00.000Z'), { llmProvider: 'mana' });
    const series = async (name: string) =>
      (await metrics.registry.getSingleMetric(name)?.get())?.values.map((sample) => [JSON.stringify(sample.labels), sample.value]) ?? [];
    expect((await series('mana_ai_provider_errors_total')).sort()).toEqual(
      ['auth', 'bad-response', 'rate-limit', 'rejected', 'server', 'timeout', 'too-large', 'unreachable'].map((kind) => [JSON.stringify({ provider: 'mana', kind }), 0]).sort(),
    );
    const providers = ['openai-deep-research', 'gemini-deep-research', 'gemini-deep-research-max', 'other'];
    for (const name of ['mana_ai_research_jobs_submitted_total', 'mana_ai_research_jobs_completed_total', 'mana_ai_research_jobs_failed_total']) {
      expect((await series(name)).sort(), name).toEqual(providers.map((provider) => [JSON.stringify({ provider }), 0]).sort());
    }
    bus.emit('research.failed', { missionId: 'm-1', userId: 'u-1', provider: 'research-answered-this', taskId: 't-1', reason: 'failed' });
    expect(await series('mana_ai_research_jobs_failed_total')).toContainEqual([JSON.stringify({ provider: 'other' }), 1]);
    expect(await series('mana_ai_research_jobs_failed_total')).toHaveLength(4);
  });

  it('maps tool calls, reminders, compactions, research and decrypt events to their metrics', async () => {
    const { emit, value } = setup();
    emit('planner.tool-call.recorded', { context, round: 1, tool: 'create_task', module: 'todo', policy: 'propose' });
    emit('planner.reminder.emitted', { context, round: 2, producer: 'token-budget', severity: 'warn' });
    emit('planner.compaction', { context, round: 2, compactedTurns: 0, contextTokensBefore: 10, contextTokensAfter: 10, usage: undefined });
    emit('planner.compaction', { context, round: 3, compactedTurns: 6, contextTokensBefore: 900, contextTokensAfter: 200, usage });
    const research = { missionId: 'm-1', userId: 'u-1' };
    emit('research.submitted', { ...research, provider: 'gemini-deep-research-max', taskId: 't-1' });
    emit('research.pending-skip', { ...research, provider: 'gemini-deep-research-max', taskId: 't-1', remoteStatus: 'running', failedPolls: 0 });
    emit('research.completed', { ...research, provider: 'gemini-deep-research-max', taskId: 't-1', hasAnswer: true });
    emit('decrypt.succeeded', { missionId: 'm-1', table: 'notes', fields: 2 });
    emit('grant.scope-violation', { missionId: 'm-1', table: 'journalEntries', reason: 'table-not-in-grant' });
    emit('grant.skipped', { missionId: 'm-1', reason: 'expired' });
    emit('row.skipped', { changeId: 'c-1', table: 'aiMissions', userId: 'u-1', recordId: 'm-9', reason: 'data-not-object' });

    expect(await value('mana_ai_tool_calls_total', { tool: 'create_task', policy: 'propose', outcome: 'deferred' })).toBe(1);
    expect(await value('mana_ai_reminders_emitted_total', { producer: 'token-budget', severity: 'warn' })).toBe(1);
    expect(await value('mana_ai_compactions_triggered_total')).toBe(1);
    expect(await value('mana_ai_compacted_turns_sum')).toBe(6);
    expect(await value('mana_ai_research_jobs_submitted_total', { provider: 'gemini-deep-research-max' })).toBe(1);
    expect(await value('mana_ai_research_jobs_pending_skips_total')).toBe(1);
    expect(await value('mana_ai_research_jobs_completed_total', { provider: 'gemini-deep-research-max' })).toBe(1);
    expect(await value('mana_ai_decrypts_total', { table: 'notes' })).toBe(2);
    expect(await value('mana_ai_grant_scope_violations_total', { table: 'journalEntries' })).toBe(1);
    expect(await value('mana_ai_grant_skips_total', { reason: 'expired' })).toBe(1);
    expect(await value('mana_ai_snapshot_bad_rows_total')).toBe(1);
    expect(await value('mana_ai_mission_entries_skipped_total', { field: 'inputs', reason: 'field-type' })).toBe(0);
    emit('entry.skipped', { userId: 'u-1', missionId: 'm-1', field: 'iterations', index: 0, reason: 'not-object' });
    expect(await value('mana_ai_mission_entries_skipped_total', { field: 'iterations', reason: 'not-object' })).toBe(1);
  });

  it('labels metrics with a fixed set of values when users choose tables, agent ids and policy words', async () => {
    const { emit, value, metrics } = setup();
    expect(await value('mana_ai_inputs_dropped_total', { reason: 'max-inputs-per-mission' })).toBe(0);
    for (let index = 0; index < 50; index += 1) {
      emit('grant.scope-violation', { missionId: 'm-1', table: `user-table-${index}`, reason: 'table-not-in-grant' });
      emit('decrypt.succeeded', { missionId: 'm-1', table: `user-table-${index}`, fields: 1 });
      emit('tokens.used', { agentId: `user-agent-${index}`, userId: 'u-1', tokens: 1 });
      // An agent's policy record is the user's: its words reach the event unchecked.
      emit('planner.tool-call.recorded', { context, round: 1, tool: 'create_task', module: 'todo', policy: `user-word-${index}` as PolicyDecision });
    }
    emit('tokens.used', { agentId: 'legacy:ai-default', userId: 'u-1', tokens: 4 });
    emit('inputs.dropped', { missionId: 'm-1', listed: 5000, dropped: 4800, reason: 'max-inputs-per-mission' });
    expect(await value('mana_ai_grant_scope_violations_total', { table: 'other' })).toBe(50);
    expect(await value('mana_ai_decrypts_total', { table: 'other' })).toBe(50);
    expect(await value('mana_ai_tokens_used_total', { agent_id: 'other' })).toBe(50);
    expect(await value('mana_ai_tokens_used_total', { agent_id: 'legacy:ai-default' })).toBe(4);
    expect(await value('mana_ai_tool_calls_total', { tool: 'create_task', policy: 'other', outcome: 'deferred' })).toBe(50);
    expect(await value('mana_ai_inputs_dropped_total', { reason: 'max-inputs-per-mission' })).toBe(4800);
    expect(await metrics.registry.metrics()).not.toMatch(/user-(table|agent|word)/);
  });

  it('tracks runs in flight, counts passes and stamps the last cycle when runs start and end', async () => {
    const { emit, value, clock } = setup();
    emit('tick.started', { passId: 'p-1', scannedAt: '2026-04-21T06:00:00.000Z' });
    emit('mission.claimed', { ...run('r-1', 'm-1'), passId: 'p-1' });
    emit('mission.claimed', { ...run('r-2', 'm-2'), passId: 'p-1' });
    emit('mission.claimed', { ...run('r-3', 'm-1'), passId: null });
    expect(await value('mana_ai_missions_in_flight')).toBe(3);
    emit('mission.plan-failed', { ...run('r-1', 'm-1'), reason: 'llm-error: server', tokens: 3 });
    // A failure after the failed plan (recording its tokens) must not count the run twice: only its end does.
    emit('mission.error', { ...run('r-1', 'm-1'), stage: 'write-back', message: 'x' });
    expect(await value('mana_ai_missions_in_flight')).toBe(3);
    emit('mission.finished', { ...run('r-1', 'm-1'), outcome: 'error', durationMs: 5 });
    expect(await value('mana_ai_missions_in_flight')).toBe(2);
    clock.advance(30_000);
    emit('dispatcher.cycle', { reasons: ['slot'], refreshed: false, claimed: 0, inFlight: 2, durationMs: 1 });
    expect(await value('mana_ai_last_tick_timestamp_seconds')).toBe(Date.parse('2026-04-21T06:00:30.000Z') / 1000);
    emit('mission.finished', { ...run('r-2', 'm-2'), outcome: 'written', durationMs: 5 });
    emit('mission.finished', { ...run('r-3', 'm-1'), outcome: 'skipped', durationMs: 5 });
    clock.advance(60_000);
    emit('tick.finished', {
      passId: 'p-1',
      stats: { scannedAt: '', dueMissionCount: 2, plansProduced: 1, plansWrittenBack: 1, parseFailures: 1, errors: [], skipped: {} },
      durationMs: 90_000,
    });
    expect(await value('mana_ai_missions_in_flight')).toBe(0);
    expect(await value('mana_ai_ticks_total')).toBe(1);
    expect(await value('mana_ai_tick_duration_seconds_sum')).toBe(90);
    expect(await value('mana_ai_last_tick_timestamp_seconds')).toBe(Date.parse('2026-04-21T06:01:30.000Z') / 1000);
  });

  it('stops counting when unsubscribed', async () => {
    const { emit, value, stop } = setup();
    stop();
    emit('mission.planned', { ...ids, agentId: null, steps: 1, rounds: 1, tokens: 0 });
    expect(await value('mana_ai_plans_produced_total')).toBe(0);
  });

  it('puts service="mana-ai" on every series and registers each metric of docs/wire-contract.md#metrics', async () => {
    const { metrics } = setup();
    const names = (await metrics.registry.getMetricsAsJSON()).map((metric) => metric.name);
    for (const name of [
      'mana_ai_http_requests_total',
      'mana_ai_http_request_duration_seconds',
      'mana_ai_ticks_total',
      'mana_ai_tick_duration_seconds',
      'mana_ai_plans_produced_total',
      'mana_ai_plans_written_back_total',
      'mana_ai_parse_failures_total',
      'mana_ai_mission_errors_total',
      'mana_ai_research_jobs_submitted_total',
      'mana_ai_research_jobs_completed_total',
      'mana_ai_research_jobs_failed_total',
      'mana_ai_research_jobs_pending_skips_total',
      'mana_ai_planner_request_duration_seconds',
      'mana_ai_snapshots_new_total',
      'mana_ai_snapshots_updated_total',
      'mana_ai_snapshot_rows_applied_total',
      'mana_ai_decrypts_total',
      'mana_ai_grant_scope_violations_total',
      'mana_ai_grant_skips_total',
      'mana_ai_inputs_dropped_total',
      'mana_ai_mission_entries_skipped_total',
      'mana_ai_agent_decisions_total',
      'mana_ai_tokens_used_total',
      'mana_ai_tool_calls_total',
      'mana_ai_planner_rounds',
      'mana_ai_provider_errors_total',
      'mana_ai_reminders_emitted_total',
      'mana_ai_compactions_triggered_total',
      'mana_ai_compacted_turns',
    ]) {
      expect(names).toContain(name);
    }
    const text = await metrics.registry.metrics();
    expect(text).toContain('mana_ai_planner_rounds_bucket{le="5",service="mana-ai"} 0');
    expect(text).toContain('mana_ai_compacted_turns_bucket{le="128",service="mana-ai"} 0');
  });

  it('samples the database gauges after a pass and at most every GAUGE_SAMPLE_MS after cycles, NaN when the lag is unavailable', async () => {
    const { metrics, clock, value } = setup();
    const bus = createEventBus<ManaAiEvents>();
    let calls = 0;
    let lagFails = false;
    const stop = sampleGauges({
      projection: {
        leaseStats: async () => ({ active: 1, expired: 3 + calls++, oldestExpiredAt: null }),
        feedLag: async () => (lagFails ? Promise.reject(new Error('no 0004')) : 2.5),
      },
      metrics,
      events: bus,
      clock,
      logger: { debug() {}, info() {}, warn() {}, error() {}, fatal() {}, trace() {}, child() { return this; } } as never,
    });
    const cycle = { reasons: ['timer' as const], refreshed: true, claimed: 0, inFlight: 0, durationMs: 1 };
    bus.emit('dispatcher.cycle', cycle);
    bus.emit('dispatcher.cycle', cycle);
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toBe(1);
    expect(await value('mana_ai_expired_leases')).toBe(3);
    expect(await value('mana_ai_feed_lag_seconds')).toBe(2.5);
    clock.advance(GAUGE_SAMPLE_MS);
    lagFails = true;
    bus.emit('dispatcher.cycle', cycle);
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toBe(2);
    expect(await value('mana_ai_feed_lag_seconds')).toBeNaN();
    bus.emit('tick.finished', { passId: 'p', stats: { scannedAt: '', dueMissionCount: 0, plansProduced: 0, plansWrittenBack: 0, parseFailures: 0, errors: [], skipped: {} }, durationMs: 1 });
    await new Promise((resolve) => setImmediate(resolve));
    expect(calls).toBe(3);
    stop();
    bus.emit('tick.finished', { passId: 'p', stats: { scannedAt: '', dueMissionCount: 0, plansProduced: 0, plansWrittenBack: 0, parseFailures: 0, errors: [], skipped: {} }, durationMs: 1 });
    expect(calls).toBe(3);
  });
});

import type { PolicyDecision, TokenUsage } from '@mana-ai/core';
import type { ProviderErrorKind } from './errors.js';
import type { FinishReason } from './llm.js';
import type { ReminderProducer, ReminderSeverity } from './reminders.js';
import type { ToolCallRejectReason } from './tool-set.js';

/** What an LLM call was for. */
export type LlmCallPurpose = 'plan' | 'compaction';

/** Identifiers a caller attaches to a run so that events can be correlated (never content). */
export interface PlannerEventContext {
  /** The dispatcher's run this planner call belongs to: traces and metrics key on it. */
  runId?: string;
  missionId?: string;
  agentId?: string;
}

/**
 * How a planner run ended (docs/wire-contract.md#llm-requests plus `llm-error`, which we do produce; `truncated`: the
 * model's answer ended with `finish_reason: length`, so the run produced no plan; `tool-call-limit`:
 * the plan reached `maxToolCalls`, the calls past it were dropped and the run ended there).
 */
export type LoopStopReason = 'assistant-stop' | 'no-tool-calls' | 'max-rounds' | 'llm-error' | 'truncated' | 'tool-call-limit';

/**
 * Why the planner limited what an LLM answered (DESIGN §6): an answer body past `maxResponseBytes`
 * (the call fails with kind `too-large`), calls past `maxToolCalls` (dropped), a call whose arguments
 * exceed `maxToolArgumentBytes` (rejected), a summary past `maxSummaryChars` (cut), an answer that
 * ended with `finish_reason: length` (no plan), an answer without `usage` (charged an estimate).
 */
export type LlmOutputLimitReason =
  | 'response-too-large'
  | 'too-many-tool-calls'
  | 'arguments-too-large'
  | 'summary-too-long'
  | 'answer-truncated'
  | 'usage-missing';

/** Every {@link LlmOutputLimitReason}, e.g. to initialise a labelled counter at 0. */
export const LLM_OUTPUT_LIMIT_REASONS: readonly LlmOutputLimitReason[] = Object.freeze([
  'response-too-large',
  'too-many-tool-calls',
  'arguments-too-large',
  'summary-too-long',
  'answer-truncated',
  'usage-missing',
]);

/**
 * Events the planner emits on the injected event bus. The runner maps them to the metrics of
 * docs/wire-contract.md#metrics (`mana_ai_planner_request_duration_seconds`, `mana_ai_tool_calls_total`,
 * `mana_ai_planner_rounds`, `mana_ai_provider_errors_total`, `mana_ai_reminders_emitted_total`,
 * `mana_ai_compactions_triggered_total`, `mana_ai_compacted_turns`).
 */
export type PlannerEvents = {
  /** An LLM call is about to be sent. */
  'planner.llm-call.started': {
    context: PlannerEventContext;
    purpose: LlmCallPurpose;
    round: number;
    model: string;
    messageCount: number;
    toolCount: number;
  };
  /** An LLM call answered. */
  'planner.llm-call.finished': {
    context: PlannerEventContext;
    purpose: LlmCallPurpose;
    round: number;
    model: string;
    durationMs: number;
    usage: TokenUsage | undefined;
    finishReason: FinishReason;
    toolCallCount: number;
  };
  /** An LLM call failed for good (after the adapter's retries). */
  'planner.provider-error': {
    context: PlannerEventContext;
    purpose: LlmCallPurpose;
    round: number;
    provider: string;
    kind: ProviderErrorKind;
    status: number | undefined;
    attempts: number;
    durationMs: number;
  };
  /** The adapter is about to retry a failed attempt. */
  'planner.provider-retry': {
    provider: string;
    kind: ProviderErrorKind;
    status: number | undefined;
    attempt: number;
    delayMs: number;
  };
  /** A valid tool call was recorded as a plan step. */
  'planner.tool-call.recorded': {
    context: PlannerEventContext;
    round: number;
    tool: string;
    module: string;
    policy: PolicyDecision;
  };
  /** A tool call was refused and answered with an error tool result. */
  'planner.tool-call.rejected': {
    context: PlannerEventContext;
    round: number;
    /** The requested name, truncated to 64 characters (may be hallucinated: do not use as a metric label as is). */
    tool: string;
    /** True when the name is one of the offered tools. */
    offered: boolean;
    reason: ToolCallRejectReason;
  };
  /** A tool call's arguments carry an injection marker (`POLICY_MODE` log-only or enforce). */
  'planner.tool-call.flagged': {
    context: PlannerEventContext;
    round: number;
    tool: string;
    marker: string;
    mode: 'log-only' | 'enforce';
  };
  /** The planner limited what an LLM answered (DESIGN §6); `limit` and `actual` when the bound is a size. */
  'planner.llm-output.limited': {
    context: PlannerEventContext;
    round: number;
    reason: LlmOutputLimitReason;
    /** The configured bound (calls, bytes, characters). */
    limit?: number;
    /** What the answer had (calls in the plan with this answer's, argument bytes; the estimated tokens for `usage-missing`; the bytes that arrived for `response-too-large`). */
    actual?: number;
  };
  /** A reminder was added to a request. */
  'planner.reminder.emitted': {
    context: PlannerEventContext;
    round: number;
    producer: ReminderProducer;
    severity: ReminderSeverity;
  };
  /** Older turns were folded into a summary. */
  'planner.compaction': {
    context: PlannerEventContext;
    round: number;
    compactedTurns: number;
    contextTokensBefore: number;
    contextTokensAfter: number;
    usage: TokenUsage | undefined;
  };
  /** A planner run ended. */
  'planner.run.finished': {
    context: PlannerEventContext;
    rounds: number;
    stopReason: LoopStopReason;
    recordedCalls: number;
    rejectedCalls: number;
    usage: TokenUsage;
    durationMs: number;
  };
};

// The planner's slice of the shared bus (see ManaAiEvents in @mana-ai/core).
declare module '@mana-ai/core' {
  interface ManaAiEvents extends PlannerEvents {}
}

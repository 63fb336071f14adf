import { type AiPolicy, type Clock, type EventChannel, type Logger, type TokenUsage, cutText, noopLogger, systemClock } from '@mana-ai/core';
import type { PlannerLocale } from './catalog-types.js';
import { type CompactionOptions, DEFAULT_COMPACT_THRESHOLD, compactHistory, estimateCutAnswerUsage, estimateTokens, estimateUsage } from './compaction.js';
import { PlannerError, type ProviderCallError, isProviderCallError } from './errors.js';
import type { LlmCallPurpose, LlmOutputLimitReason, LoopStopReason, PlannerEventContext, PlannerEvents } from './events.js';
import { POLICY_MODES, type PolicyMode, detectInjectionMarker } from './injection.js';
import { type ChatMessage, type LlmAdapter, type LlmCompletionRequest, type LlmCompletionResponse, ZERO_USAGE, addUsage } from './llm.js';
import { resolveToolPolicy } from './policy.js';
import type { ExecutedCall, ReminderChannel, ToolResult } from './reminders.js';
import type { ToolSchema } from './catalog-types.js';
import type { ToolCallRejectReason, ToolSet } from './tool-set.js';

/** Default maximum of LLM rounds per run. */
export const DEFAULT_MAX_ROUNDS = 5;
/** Default maximum of tool calls answered per run (recorded and rejected; DESIGN §6). */
export const DEFAULT_MAX_TOOL_CALLS = 50;
/** Default maximum size of one call's arguments, as JSON in UTF-8 bytes (16 KiB; DESIGN §6). */
export const DEFAULT_MAX_TOOL_ARGUMENT_BYTES = 16_384;
/** Default maximum length of the plan's summary, in characters (code points; DESIGN §6). */
export const DEFAULT_MAX_SUMMARY_CHARS = 4000;
/** How many answered calls the reminder state carries. */
export const RECENT_CALLS_WINDOW = 5;
/** What the server answers for every recorded call (docs/wire-contract.md#tool-calls-on-the-wire). */
export const RECORDED_TOOL_RESULT: ToolResult = Object.freeze({ success: true, message: 'recorded — pending client application' });

/** Collaborators of {@link runPlannerLoop}. */
export interface PlannerLoopDeps {
  adapter: LlmAdapter;
  /** Receives the planner events (default: none). */
  events?: EventChannel<PlannerEvents>;
  /** Source of durations (default: the system clock). */
  clock?: Clock;
  logger?: Logger;
}

/** One planner run. */
export interface PlannerLoopInput {
  systemPrompt: string;
  userPrompt: string;
  /** Messages between the system prompt and the user prompt. */
  priorMessages?: ChatMessage[];
  /** The offered tools; calls outside it, or with invalid arguments, are rejected. */
  toolSet: ToolSet;
  /** The agent policy, used to label recorded calls (`auto`/`propose`). */
  policy?: AiPolicy;
  model?: string;
  temperature?: number;
  /** Default 5. */
  maxRounds?: number;
  /**
   * Tool calls answered per run at most, recorded and rejected (default 50). The calls of an answer
   * past it are dropped, not answered, and the run ends with `stopReason: 'tool-call-limit'`: the
   * calls kept so far are the plan.
   */
  maxToolCalls?: number;
  /** Largest arguments of one call, as JSON in UTF-8 bytes (default 16384); a larger call is rejected. */
  maxToolArgumentBytes?: number;
  /** Longest summary in characters (default 4000); a longer one is cut at a code-point boundary. */
  maxSummaryChars?: number;
  /** What to do with injection markers in arguments (default `log-only`). */
  policyMode?: PolicyMode;
  /** Answers a valid call (default: {@link RECORDED_TOOL_RESULT}). Must not throw. */
  onToolCall?: (call: ExecutedCall['call'], tool: ToolSchema) => ToolResult | Promise<ToolResult>;
  /** Produces reminders before each request. */
  reminders?: ReminderChannel;
  /** Folds older turns when the context grows too large. */
  compaction?: CompactionOptions;
  /** Language of the compaction prompt (default `de`). */
  locale?: PlannerLocale;
  /** Correlation ids copied into every event. */
  context?: PlannerEventContext;
  /** Aborts the run between and during LLM calls (the abort error propagates). */
  signal?: AbortSignal;
}

/** What a planner run produced. */
export interface PlannerLoopResult {
  rounds: number;
  /** Valid calls, in execution order: these become plan steps. */
  executedCalls: ExecutedCall[];
  /** Calls answered with an error and not recorded. */
  rejectedCalls: ExecutedCall[];
  /** The final assistant text; `null` unless the model stopped by itself. */
  summary: string | null;
  stopReason: LoopStopReason;
  /** The history as the model last saw it (without reminders). */
  messages: ChatMessage[];
  /** Tokens of every call of the run, compaction and failed calls included when reported. */
  usage: TokenUsage;
  compactionsDone: number;
  /** The provider failure that ended the run (`stopReason: 'llm-error'`). */
  error?: ProviderCallError;
}

/**
 * Runs the function-calling planner loop (docs/wire-contract.md#tool-calls-on-the-wire) with our decisions: every call is checked
 * against the offered tools and their JSON schemas (an invalid call gets an error tool result and is
 * not recorded), `enforce` rejects calls with injection markers, compaction triggers on the current
 * context size and keeps tool-call pairs together, and usage sums every call (an answer without
 * usage is charged {@link estimateUsage}, one cut at the adapter's size cap {@link estimateCutAnswerUsage}). What an LLM answers is bounded (DESIGN §6): tool calls per
 * run, argument size, summary length; an answer cut off by the provider (`finish_reason: length`)
 * ends the run with `stopReason: 'truncated'` and no plan. Each limit emits
 * `planner.llm-output.limited` and logs a warning. A provider failure ends the run with
 * `stopReason: 'llm-error'` and the usage so far; other errors propagate.
 */
export async function runPlannerLoop(deps: PlannerLoopDeps, input: PlannerLoopInput): Promise<PlannerLoopResult> {
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger ?? noopLogger;
  const context = input.context ?? {};
  const maxRounds = input.maxRounds ?? DEFAULT_MAX_ROUNDS;
  const policyMode = input.policyMode ?? 'log-only';
  if (!Number.isInteger(maxRounds) || maxRounds < 1) throw new PlannerError('PLANNER_INVALID_OPTIONS', 'maxRounds must be a positive integer');
  if (!POLICY_MODES.includes(policyMode)) throw new PlannerError('PLANNER_INVALID_OPTIONS', 'policyMode must be off, log-only or enforce');
  const maxToolCalls = positiveInteger('maxToolCalls', input.maxToolCalls ?? DEFAULT_MAX_TOOL_CALLS);
  const maxToolArgumentBytes = positiveInteger('maxToolArgumentBytes', input.maxToolArgumentBytes ?? DEFAULT_MAX_TOOL_ARGUMENT_BYTES);
  const maxSummaryChars = positiveInteger('maxSummaryChars', input.maxSummaryChars ?? DEFAULT_MAX_SUMMARY_CHARS);
  const model = input.model ?? deps.adapter.defaultModel;
  const functionSchemas = input.toolSet.functionSchemas;
  const startedAt = clock.now();

  let messages: ChatMessage[] = [
    { role: 'system', content: input.systemPrompt },
    ...(input.priorMessages ?? []),
    { role: 'user', content: input.userPrompt },
  ];
  let usage = ZERO_USAGE;
  let rounds = 0;
  let compactionsDone = 0;
  let compactionFailed = false;
  let summary: string | null = null;
  let stopReason: LoopStopReason = 'max-rounds';
  let error: ProviderCallError | undefined;
  const executedCalls: ExecutedCall[] = [];
  const rejectedCalls: ExecutedCall[] = [];
  const answeredCalls: ExecutedCall[] = [];

  const limited = (round: number, reason: LlmOutputLimitReason, sizes: { limit?: number; actual?: number } = {}): void => {
    deps.events?.emit('planner.llm-output.limited', { context, round, reason, ...sizes });
    logger.warn({ ...context, round, reason, ...sizes }, 'planner limited the LLM output');
  };

  /** One adapter call with its events; provider failures are returned, not thrown. */
  async function call(purpose: LlmCallPurpose, request: LlmCompletionRequest): Promise<LlmCompletionResponse | ProviderCallError> {
    const callModel = request.model ?? model;
    deps.events?.emit('planner.llm-call.started', {
      context,
      purpose,
      round: rounds,
      model: callModel,
      messageCount: request.messages.length,
      toolCount: request.tools.length,
    });
    const before = clock.now();
    try {
      const response = await deps.adapter.complete({ ...request, ...(input.signal ? { signal: input.signal } : {}) });
      let charged = response.usage;
      if (!charged) {
        charged = estimateUsage(request, response);
        limited(rounds, 'usage-missing', { actual: charged.totalTokens });
      }
      usage = addUsage(usage, charged);
      deps.events?.emit('planner.llm-call.finished', {
        context,
        purpose,
        round: rounds,
        model: callModel,
        durationMs: clock.now() - before,
        usage: response.usage,
        finishReason: response.finishReason,
        toolCallCount: response.toolCalls.length,
      });
      return response;
    } catch (thrown) {
      if (!isProviderCallError(thrown)) throw thrown;
      if (thrown.kind === 'too-large') {
        // The provider produced (and sent) at least this much: charged, or huge answers cost nothing.
        const receivedBytes = thrown.receivedBytes ?? 0;
        usage = addUsage(usage, estimateCutAnswerUsage(request, receivedBytes));
        limited(rounds, 'response-too-large', { actual: receivedBytes });
      }
      deps.events?.emit('planner.provider-error', {
        context,
        purpose,
        round: rounds,
        provider: thrown.provider,
        kind: thrown.kind,
        status: thrown.status,
        attempts: thrown.attempts,
        durationMs: clock.now() - before,
      });
      logger.warn({ ...context, purpose, kind: thrown.kind, status: thrown.status, attempts: thrown.attempts }, 'planner LLM call failed');
      return thrown;
    }
  }

  async function maybeCompact(): Promise<void> {
    const options = input.compaction;
    if (!options || options.maxContextTokens <= 0 || compactionFailed) return;
    if (compactionsDone >= (options.maxCompactions ?? 1)) return;
    const estimate = options.estimateTokens ?? estimateTokens;
    const before = estimate(messages, functionSchemas);
    if (before / options.maxContextTokens < (options.threshold ?? DEFAULT_COMPACT_THRESHOLD)) return;
    const adapter: LlmAdapter = {
      provider: deps.adapter.provider,
      defaultModel: deps.adapter.defaultModel,
      complete: async (request) => {
        const response = await call('compaction', request);
        if (isProviderCallError(response)) throw response;
        return response;
      },
    };
    try {
      const result = await compactHistory(adapter, messages, {
        ...(options.keepRecent === undefined ? {} : { keepRecent: options.keepRecent }),
        ...(options.model === undefined ? {} : { model: options.model }),
        ...(options.temperature === undefined ? {} : { temperature: options.temperature }),
        ...(input.locale === undefined ? {} : { locale: input.locale }),
      });
      if (result.compactedTurns === 0) return;
      messages = result.messages;
      compactionsDone++;
      deps.events?.emit('planner.compaction', {
        context,
        round: rounds,
        compactedTurns: result.compactedTurns,
        contextTokensBefore: before,
        contextTokensAfter: estimate(messages, functionSchemas),
        usage: result.usage,
      });
    } catch (thrown) {
      if (!isProviderCallError(thrown)) throw thrown;
      // A failed compaction is not fatal: plan on with the full history and do not try again.
      compactionFailed = true;
    }
  }

  async function answer(round: number, toolCall: ExecutedCall['call']): Promise<ExecutedCall> {
    const reject = (reason: ToolCallRejectReason, message: string): ExecutedCall => {
      const executed: ExecutedCall = { round, call: toolCall, result: { success: false, message } };
      rejectedCalls.push(executed);
      deps.events?.emit('planner.tool-call.rejected', {
        context,
        round,
        tool: toolCall.name.slice(0, 64),
        offered: input.toolSet.names.has(toolCall.name),
        reason,
      });
      logger.info({ ...context, round, reason, offered: input.toolSet.names.has(toolCall.name) }, 'planner rejected a tool call');
      return executed;
    };
    const argumentBytes = utf8Bytes(JSON.stringify(toolCall.arguments));
    if (argumentBytes > maxToolArgumentBytes) {
      limited(round, 'arguments-too-large', { limit: maxToolArgumentBytes, actual: argumentBytes });
      return reject('arguments-too-large', `Arguments of "${toolCall.name.slice(0, 64)}" exceed ${maxToolArgumentBytes} bytes: keep them shorter.`);
    }
    if (toolCall.argumentsError && input.toolSet.names.has(toolCall.name)) {
      return reject('invalid-arguments', `Arguments of "${toolCall.name}" must be a JSON object.`);
    }
    const check = input.toolSet.check(toolCall.name, toolCall.arguments);
    if (!check.ok) return reject(check.reason, check.message);
    if (policyMode !== 'off') {
      const marker = detectInjectionMarker(toolCall.arguments);
      if (marker) {
        deps.events?.emit('planner.tool-call.flagged', { context, round, tool: toolCall.name, marker, mode: policyMode });
        logger.warn({ ...context, tool: toolCall.name, marker, mode: policyMode }, 'planner flagged a tool call');
        if (policyMode === 'enforce') {
          return reject('injection-marker', `Call to "${toolCall.name}" rejected: its arguments contain text that looks like an instruction to an AI.`);
        }
      }
    }
    const result = input.onToolCall ? await input.onToolCall(toolCall, check.tool) : RECORDED_TOOL_RESULT;
    const executed: ExecutedCall = { round, call: toolCall, result };
    executedCalls.push(executed);
    deps.events?.emit('planner.tool-call.recorded', {
      context,
      round,
      tool: check.tool.name,
      module: check.tool.module,
      policy: resolveToolPolicy(check.tool, input.policy),
    });
    return executed;
  }

  while (rounds < maxRounds) {
    rounds++;
    if (rounds > 1) await maybeCompact();

    const reminderMessages: ChatMessage[] = [];
    if (input.reminders) {
      const reminders = input.reminders({
        round: rounds,
        toolCallCount: executedCalls.length,
        usage,
        lastCall: answeredCalls.at(-1),
        recentCalls: answeredCalls.slice(-RECENT_CALLS_WINDOW),
        compactionsDone,
      });
      for (const reminder of reminders) {
        reminderMessages.push({ role: 'system', content: `<reminder>${reminder.text}</reminder>` });
        deps.events?.emit('planner.reminder.emitted', { context, round: rounds, producer: reminder.producer, severity: reminder.severity });
      }
    }

    const response = await call('plan', {
      messages: [...messages, ...reminderMessages],
      tools: functionSchemas,
      model,
      ...(input.temperature === undefined ? {} : { temperature: input.temperature }),
    });
    if (isProviderCallError(response)) {
      stopReason = 'llm-error';
      error = response;
      break;
    }
    if (response.finishReason === 'length') {
      // Cut off by the provider: its text and calls are incomplete, so nothing of it becomes a plan.
      limited(rounds, 'answer-truncated');
      stopReason = 'truncated';
      break;
    }

    const room = maxToolCalls - answeredCalls.length;
    const toolCalls = response.toolCalls.length > room ? response.toolCalls.slice(0, room) : response.toolCalls;
    const full = toolCalls.length < response.toolCalls.length;
    if (full) limited(rounds, 'too-many-tool-calls', { limit: maxToolCalls, actual: answeredCalls.length + response.toolCalls.length });
    messages.push({
      role: 'assistant',
      content: response.content,
      ...(toolCalls.length > 0 ? { toolCalls } : {}),
    });
    if (response.toolCalls.length === 0) {
      summary = response.content;
      stopReason = response.finishReason === 'stop' ? 'assistant-stop' : 'no-tool-calls';
      break;
    }
    for (const toolCall of toolCalls) {
      const executed = await answer(rounds, toolCall);
      answeredCalls.push(executed);
      const { success, message, data } = executed.result;
      messages.push({
        role: 'tool',
        toolCallId: toolCall.id,
        content: JSON.stringify({ success, message, ...(data === undefined ? {} : { data }) }),
      });
    }
    if (full) {
      // The plan is full: what the model said with its last calls is the summary.
      summary = response.content;
      stopReason = 'tool-call-limit';
      break;
    }
    if (rounds >= maxRounds) stopReason = 'max-rounds';
  }
  if (summary !== null) {
    const cut = cutText(summary, maxSummaryChars);
    if (cut !== undefined) {
      limited(rounds, 'summary-too-long', { limit: maxSummaryChars });
      summary = cut;
    }
  }

  deps.events?.emit('planner.run.finished', {
    context,
    rounds,
    stopReason,
    recordedCalls: executedCalls.length,
    rejectedCalls: rejectedCalls.length,
    usage,
    durationMs: clock.now() - startedAt,
  });
  return { rounds, executedCalls, rejectedCalls, summary, stopReason, messages, usage, compactionsDone, ...(error ? { error } : {}) };
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new PlannerError('PLANNER_INVALID_OPTIONS', `${name} must be a positive integer`);
  return value;
}

const encoder = new TextEncoder();

/** The UTF-8 size of `text` in bytes. */
function utf8Bytes(text: string): number {
  return encoder.encode(text).byteLength;
}

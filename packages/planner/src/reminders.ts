import type { TokenUsage } from '@mana-ai/core';
import type { PlannerLocale } from './catalog-types.js';
import type { ToolCallRequest } from './llm.js';

/** The result a tool call was answered with (docs/wire-contract.md#llm-requests `ToolResult`). */
export interface ToolResult {
  success: boolean;
  message: string;
  data?: unknown;
}

/** A tool call the loop answered, recorded or rejected. */
export interface ExecutedCall {
  round: number;
  call: ToolCallRequest;
  result: ToolResult;
}

/** What a reminder producer sees before each LLM request. */
export interface LoopState {
  round: number;
  /** Recorded (valid) calls so far. */
  toolCallCount: number;
  usage: TokenUsage;
  /** The last answered call, recorded or rejected. */
  lastCall: ExecutedCall | undefined;
  /** The last ≤ 5 answered calls, recorded or rejected, oldest first. */
  recentCalls: readonly ExecutedCall[];
  compactionsDone: number;
}

/** Who produced a reminder. */
export type ReminderProducer = 'compacted' | 'token-budget' | 'retry-loop';
/** How urgent a reminder is. */
export type ReminderSeverity = 'info' | 'warn' | 'escalate';

/** A system note added after the history for one request only. */
export interface Reminder {
  producer: ReminderProducer;
  severity: ReminderSeverity;
  text: string;
}

/** Turns the loop state into reminders for the next request. */
export type ReminderChannel = (state: LoopState) => Reminder[];

/** Options of {@link createReminderChannel}. */
export interface ReminderChannelOptions {
  /** The agent whose daily budget is watched (`maxTokensPerDay` undefined or ≤ 0 = no budget reminders). */
  agent?: { name: string; maxTokensPerDay?: number | undefined } | undefined;
  /** Tokens the agent used in the 24 h before this run (default 0). */
  pretickUsage24h?: number;
  /** Language of the texts (default `de`). */
  locale?: PlannerLocale;
}

/** Budget share at which the `warn` reminder starts. */
export const BUDGET_WARN_RATIO = 0.75;
/** Budget share at which the `escalate` reminder starts. */
export const BUDGET_ESCALATE_RATIO = 1;
/** First round in which the retry-loop reminder may fire. */
export const RETRY_LOOP_MIN_ROUND = 3;

const TEXTS = {
  de: {
    compacted:
      'Ältere Runden wurden zu einer <compact-summary> zusammengefasst, damit der Kontext nicht überläuft. Diese Zusammenfassung ist die maßgebliche Kurzfassung des bisherigen Verlaufs: frag nicht nach verlorenen Details, sondern arbeite von dort aus weiter.',
    warn: (name: string, pct: number, total: number, cap: number) =>
      `Agent ${name} hat ${pct}% des Tagesbudgets verbraucht (${total} / ${cap} Tokens). Plane sparsam: vermeide überflüssige Tool-Calls und schließe zügig mit einer Zusammenfassung ab.`,
    escalate: (name: string, pct: number, total: number, cap: number) =>
      `Agent ${name} hat das Tagesbudget aufgebraucht (${total} / ${cap} Tokens = ${pct}%). Schließe die Mission jetzt mit einer Zusammenfassung ab und rufe keine weiteren Tools auf.`,
    retryLoop:
      'Die letzten 2 Tool-Calls sind fehlgeschlagen. Wiederhole sie nicht, sondern erkläre dem Nutzer in einer Zusammenfassung, was nicht geklappt hat.',
  },
  en: {
    compacted:
      'Older rounds were folded into a <compact-summary> to keep the context small. That summary is the authoritative short history: do not ask for lost details, continue from there.',
    warn: (name: string, pct: number, total: number, cap: number) =>
      `Agent ${name} has used ${pct}% of its daily budget (${total} / ${cap} tokens). Plan economically: avoid redundant tool calls and finish with a summary soon.`,
    escalate: (name: string, pct: number, total: number, cap: number) =>
      `Agent ${name} has used up its daily budget (${total} / ${cap} tokens = ${pct}%). Finish the mission now with a summary and call no more tools.`,
    retryLoop: 'The last 2 tool calls failed. Do not repeat them; write a summary that explains to the user what went wrong.',
  },
} as const;

/**
 * Creates the reminder channel of docs/wire-contract.md#prompt-layout: `compacted` after a compaction, `token-budget`
 * at 75 % (warn) and 100 % (escalate) of the agent's daily budget, counting the tokens of this
 * run, and `retry-loop` from round 3 when the last two answered calls failed. Unlike upstream,
 * rejected calls count as failed, so the retry-loop reminder can actually fire.
 */
export function createReminderChannel(options: ReminderChannelOptions = {}): ReminderChannel {
  const texts = TEXTS[options.locale ?? 'de'];
  const pretick = options.pretickUsage24h ?? 0;
  return (state) => {
    const reminders: Reminder[] = [];
    if (state.compactionsDone >= 1) reminders.push({ producer: 'compacted', severity: 'info', text: texts.compacted });
    const cap = options.agent?.maxTokensPerDay;
    if (options.agent && cap !== undefined && cap > 0) {
      const total = pretick + state.usage.totalTokens;
      const ratio = total / cap;
      const pct = Math.round(ratio * 100);
      if (ratio >= BUDGET_ESCALATE_RATIO) {
        reminders.push({ producer: 'token-budget', severity: 'escalate', text: texts.escalate(options.agent.name, pct, total, cap) });
      } else if (ratio >= BUDGET_WARN_RATIO) {
        reminders.push({ producer: 'token-budget', severity: 'warn', text: texts.warn(options.agent.name, pct, total, cap) });
      }
    }
    const [previous, last] = state.recentCalls.slice(-2);
    if (state.round >= RETRY_LOOP_MIN_ROUND && previous && last && !previous.result.success && !last.result.success) {
      reminders.push({ producer: 'retry-loop', severity: 'warn', text: texts.retryLoop });
    }
    return reminders;
  };
}

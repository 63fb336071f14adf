import type { TokenUsage } from '@mana-ai/core';
import type { PlannerLocale } from './catalog-types.js';
import type { FunctionToolSpec } from './function-schema.js';
import type { ChatMessage, LlmAdapter, LlmCompletionRequest, LlmCompletionResponse } from './llm.js';

/** Context share at which compaction starts (docs/wire-contract.md#prompt-layout). */
export const DEFAULT_COMPACT_THRESHOLD = 0.92;
/** Messages kept verbatim at the end (widened so no tool result loses its assistant call). */
export const DEFAULT_COMPACT_KEEP_RECENT = 4;
/** Temperature of the compaction call. */
export const DEFAULT_COMPACT_TEMPERATURE = 0.2;

/** When and how the loop folds older turns into a summary. */
export interface CompactionOptions {
  /** Context window of the model in tokens; `0` disables compaction. */
  maxContextTokens: number;
  /** Share of `maxContextTokens` the current context must reach (default 0.92). */
  threshold?: number;
  /** Messages kept verbatim at the end (default 4, widened to keep tool-call pairs). */
  keepRecent?: number;
  /** Model of the compaction call (default: the adapter's default model). */
  model?: string;
  /** Temperature of the compaction call (default 0.2). */
  temperature?: number;
  /** Compactions allowed per run (default 1). */
  maxCompactions?: number;
  /** Estimates the tokens of a request (default {@link estimateTokens}). */
  estimateTokens?: (messages: readonly ChatMessage[], tools: readonly FunctionToolSpec[]) => number;
}

/** The four sections of a compaction summary. */
export interface CompactSummary {
  goal: string;
  decisions: string;
  toolsCalled: string;
  currentProgress: string;
}

/** What {@link compactHistory} returns. */
export interface CompactionResult {
  messages: ChatMessage[];
  /** Folded messages; 0 means nothing changed and no LLM call was made. */
  compactedTurns: number;
  summary: CompactSummary;
  usage: TokenUsage | undefined;
}

const CHARS_PER_TOKEN = 4;
const TOKENS_PER_MESSAGE = 4;

/**
 * A provider-independent estimate of a request's size: a token per 4 characters of every message
 * (tool calls included) and of the tool specs, plus a small per-message overhead. It is what
 * triggers compaction, so the trigger follows the current context, not cumulative spend.
 */
export function estimateTokens(messages: readonly ChatMessage[], tools: readonly FunctionToolSpec[] = []): number {
  let chars = toolsLength(tools);
  for (const message of messages) {
    chars += message.content?.length ?? 0;
    for (const call of message.toolCalls ?? []) chars += call.name.length + JSON.stringify(call.arguments).length + call.id.length;
  }
  return Math.ceil(chars / CHARS_PER_TOKEN) + messages.length * TOKENS_PER_MESSAGE;
}

/**
 * The usage charged for an answer whose provider reported none: {@link estimateTokens} of the
 * request (messages and tool specs) as prompt tokens, of the answer (text and tool calls) as
 * completion tokens. Rough (a token per 4 characters), but never 0, so the agent's budget still trips.
 */
export function estimateUsage(request: Pick<LlmCompletionRequest, 'messages' | 'tools'>, answer: Pick<LlmCompletionResponse, 'content' | 'toolCalls'>): TokenUsage {
  const promptTokens = estimateTokens(request.messages, request.tools);
  const completionTokens = estimateTokens([{ role: 'assistant', content: answer.content, toolCalls: answer.toolCalls }]);
  return { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens };
}

/**
 * The usage charged for an answer cut off at the adapter's `maxResponseBytes` (kind `too-large`):
 * {@link estimateTokens} of the request as prompt tokens, and for the answer a token per 4 of the
 * bytes that arrived (`ProviderCallError.receivedBytes`), the rule of {@link estimateUsage} with
 * bytes for characters. A provider that keeps answering huge bodies still fills the budget.
 */
export function estimateCutAnswerUsage(request: Pick<LlmCompletionRequest, 'messages' | 'tools'>, receivedBytes: number): TokenUsage {
  const promptTokens = estimateTokens(request.messages, request.tools);
  const completionTokens = Math.ceil(Math.max(receivedBytes, 0) / CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE;
  return { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens };
}

// The tool list of a run is one array for all its rounds (and the catalog's for all runs of an
// agent): its serialised length is measured once, not every round.
const toolLengths = new WeakMap<readonly FunctionToolSpec[], number>();

function toolsLength(tools: readonly FunctionToolSpec[]): number {
  if (tools.length === 0) return 0;
  let length = toolLengths.get(tools);
  if (length === undefined) {
    length = JSON.stringify(tools).length;
    toolLengths.set(tools, length);
  }
  return length;
}

/**
 * Splits history into the kept head (everything up to the first user message), the middle to fold
 * and the kept tail. The tail starts at most `keepRecent` messages from the end and is moved back
 * until it does not start with a tool result, so an assistant `tool_calls` message and its results
 * always stay on the same side. Returns `null` when there is nothing to fold.
 */
export function splitForCompaction(
  messages: readonly ChatMessage[],
  keepRecent: number = DEFAULT_COMPACT_KEEP_RECENT,
): { head: ChatMessage[]; middle: ChatMessage[]; tail: ChatMessage[] } | null {
  const firstUser = messages.findIndex((message) => message.role === 'user');
  const headEnd = firstUser >= 0 ? firstUser + 1 : messages.findIndex((message) => message.role !== 'system');
  if (headEnd < 0) return null;
  let tailStart = Math.max(headEnd, messages.length - keepRecent);
  while (tailStart > headEnd && messages[tailStart]?.role === 'tool') tailStart--;
  if (tailStart <= headEnd) return null;
  return { head: messages.slice(0, headEnd), middle: messages.slice(headEnd, tailStart), tail: messages.slice(tailStart) };
}

const PROMPTS = {
  de: {
    system: [
      'Du bist ein Compact-Agent. Du fasst den bisherigen Verlauf eines Planungs-Agenten knapp zusammen.',
      'Antworte ausschließlich mit einem Markdown-Block mit genau diesen Überschriften in dieser Reihenfolge:',
      '## Goal (ein Satz: das ursprüngliche Ziel)',
      '## Decisions (Stichpunkte: getroffene Entscheidungen)',
      '## Tools Called (Stichpunkte: toolname(kurze Argumente) -> kurzes Ergebnis; Fehler ausdrücklich nennen)',
      '## Current Progress (ein Satz: aktueller Stand und nächster Schritt)',
      'Regeln: keine Einleitung und kein Nachwort; erfinde nichts, schreibe "unklar", wenn du unsicher bist; Fachbegriffe und IDs wörtlich übernehmen; antworte auf Deutsch.',
    ].join('\n'),
    task: 'Ursprüngliche Aufgabe:',
    history: 'Verlauf, der zusammengefasst werden soll:',
    instruction: 'Fasse den Verlauf jetzt im vorgegebenen Schema zusammen. Nur den Markdown-Block.',
  },
  en: {
    system: [
      'You are a compaction agent. You summarise the history of a planning agent concisely.',
      'Answer only with a Markdown block with exactly these headings, in this order:',
      '## Goal (one sentence: the original goal)',
      '## Decisions (bullets: decisions taken)',
      '## Tools Called (bullets: toolname(short arguments) -> short result; name errors explicitly)',
      '## Current Progress (one sentence: current state and next step)',
      'Rules: no preamble or epilogue; invent nothing, write "unclear" when unsure; keep technical terms and IDs verbatim; answer in English.',
    ].join('\n'),
    task: 'Original task:',
    history: 'History to summarise:',
    instruction: 'Summarise the history now in the given schema. Only the Markdown block.',
  },
} as const;

const SECTIONS: readonly [keyof CompactSummary, string][] = [
  ['goal', 'Goal'],
  ['decisions', 'Decisions'],
  ['toolsCalled', 'Tools Called'],
  ['currentProgress', 'Current Progress'],
];

/** Reads the four sections of a compaction answer; a missing section is `''`. */
export function parseCompactSummary(raw: string): CompactSummary {
  const summary: CompactSummary = { goal: '', decisions: '', toolsCalled: '', currentProgress: '' };
  for (const [key, header] of SECTIONS) {
    const match = new RegExp(`##\\s+${header}\\s*\\n([\\s\\S]*?)(?=\\n##\\s|$)`, 'i').exec(raw);
    summary[key] = match?.[1]?.trim() ?? '';
  }
  return summary;
}

/** Renders a summary as the `<compact-summary>` block that replaces the folded turns. */
export function renderCompactSummary(summary: CompactSummary): string {
  return [
    '<compact-summary>',
    `## Goal\n${summary.goal || 'unklar'}`,
    '',
    `## Decisions\n${summary.decisions || '(keine)'}`,
    '',
    `## Tools Called\n${summary.toolsCalled || '(keine)'}`,
    '',
    `## Current Progress\n${summary.currentProgress || 'unklar'}`,
    '</compact-summary>',
  ].join('\n');
}

/** Renders folded messages as plain text: tool-role history is never sent without its tools. */
function renderTranscript(messages: readonly ChatMessage[]): string {
  const lines: string[] = [];
  for (const message of messages) {
    if (message.content) lines.push(`[${message.role}${message.toolCallId ? ` ${message.toolCallId}` : ''}] ${message.content}`);
    for (const call of message.toolCalls ?? []) lines.push(`[tool call ${call.id}] ${call.name}(${JSON.stringify(call.arguments)})`);
  }
  return lines.join('\n');
}

/** Options of {@link compactHistory}. */
export interface CompactHistoryOptions {
  keepRecent?: number;
  model?: string;
  temperature?: number;
  locale?: PlannerLocale;
}

/**
 * Folds the middle of `messages` into a summary with one LLM call (no tools offered; the folded
 * turns are sent as a transcript). Returns the same array and `compactedTurns: 0` without calling
 * the LLM when there is nothing to fold. Provider errors propagate.
 */
export async function compactHistory(
  adapter: LlmAdapter,
  messages: ChatMessage[],
  options: CompactHistoryOptions = {},
): Promise<CompactionResult> {
  const empty: CompactSummary = { goal: '', decisions: '', toolsCalled: '', currentProgress: '' };
  const split = splitForCompaction(messages, options.keepRecent ?? DEFAULT_COMPACT_KEEP_RECENT);
  if (!split) return { messages, compactedTurns: 0, summary: empty, usage: undefined };
  const prompts = PROMPTS[options.locale ?? 'de'];
  const task = split.head.filter((message) => message.role === 'user').map((message) => message.content ?? '');
  const response = await adapter.complete({
    messages: [
      { role: 'system', content: prompts.system },
      {
        role: 'user',
        content: [prompts.task, ...task, '', prompts.history, renderTranscript(split.middle), '', prompts.instruction].join('\n'),
      },
    ],
    tools: [],
    model: options.model ?? adapter.defaultModel,
    temperature: options.temperature ?? DEFAULT_COMPACT_TEMPERATURE,
  });
  const summary = parseCompactSummary(response.content ?? '');
  return {
    messages: [...split.head, { role: 'assistant', content: renderCompactSummary(summary) }, ...split.tail],
    compactedTurns: split.middle.length,
    summary,
    usage: response.usage,
  };
}

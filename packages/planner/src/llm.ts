import type { TokenUsage } from '@mana-ai/core';
import type { FunctionToolSpec } from './function-schema.js';

/** A tool call the model made (docs/wire-contract.md#llm-requests `ToolCallRequest`). */
export interface ToolCallRequest {
  id: string;
  name: string;
  /** The parsed arguments; `{}` when the model sent something that is not a JSON object. */
  arguments: Record<string, unknown>;
  /** Set when the model's arguments were not a JSON object (`not-json` or `not-object`). */
  argumentsError?: 'not-json' | 'not-object';
}

/** One chat message (docs/wire-contract.md#llm-requests `ChatMessage`). */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content?: string | null;
  toolCalls?: ToolCallRequest[];
  toolCallId?: string;
}

/** Why the model stopped generating. */
export type FinishReason = 'stop' | 'tool_calls' | 'length' | 'content_filter';

/** One chat-completion request. */
export interface LlmCompletionRequest {
  messages: readonly ChatMessage[];
  /** Offered tools; an empty list sends no `tools` field at all. */
  tools: readonly FunctionToolSpec[];
  /** Overrides the adapter's default model. */
  model?: string;
  /** Overrides the adapter's default temperature. */
  temperature?: number;
  /** Aborts the call (the adapter rethrows the abort, it is not a provider error). */
  signal?: AbortSignal;
}

/** One chat-completion answer. */
export interface LlmCompletionResponse {
  content: string | null;
  toolCalls: ToolCallRequest[];
  finishReason: FinishReason;
  /** Token usage, when the provider reported it. */
  usage: TokenUsage | undefined;
}

/** An LLM provider: one chat completion per call. Failures throw a `ProviderCallError`. */
export interface LlmAdapter {
  /** Label used in events and errors (e.g. the provider's host). */
  readonly provider: string;
  /** The model used when a request names none. */
  readonly defaultModel: string;
  /** Runs one chat completion. */
  complete(request: LlmCompletionRequest): Promise<LlmCompletionResponse>;
}

/** Adds two usages. */
export function addUsage(a: TokenUsage, b: TokenUsage | undefined): TokenUsage {
  if (!b) return a;
  const promptTokens = a.promptTokens + b.promptTokens;
  const completionTokens = a.completionTokens + b.completionTokens;
  return { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens };
}

/** A usage of zero tokens. */
export const ZERO_USAGE: TokenUsage = Object.freeze({ promptTokens: 0, completionTokens: 0, totalTokens: 0 });

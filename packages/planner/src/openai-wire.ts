import type { TokenUsage } from '@mana-ai/core';
import type { ChatMessage, FinishReason, LlmCompletionRequest, LlmCompletionResponse, ToolCallRequest } from './llm.js';

/** The chat-completions request body (non-streaming; `tools` omitted when none are offered). */
export function toWireRequest(request: LlmCompletionRequest, defaults: { model: string; temperature: number }): Record<string, unknown> {
  return {
    model: request.model ?? defaults.model,
    messages: request.messages.map(toWireMessage),
    ...(request.tools.length > 0 ? { tools: request.tools, tool_choice: 'auto' } : {}),
    temperature: request.temperature ?? defaults.temperature,
    stream: false,
  };
}

const encoder = new TextEncoder();

// A run offers one tool list in all its rounds (and an agent's runs share the catalog's): its UTF-8
// JSON, the bulk of every request (~28 KB for the webapp's catalog), is serialised and encoded once
// per list.
const toolsBytes = new WeakMap<LlmCompletionRequest['tools'], Uint8Array<ArrayBuffer>>();

/**
 * The request body as UTF-8 JSON, byte for byte `JSON.stringify(toWireRequest(request, defaults))`
 * encoded, with the tool list's bytes reused across requests that offer the same list.
 */
export function toWireBody(request: LlmCompletionRequest, defaults: { model: string; temperature: number }): Uint8Array<ArrayBuffer> {
  let tools: Uint8Array<ArrayBuffer> | undefined;
  if (request.tools.length > 0) {
    tools = toolsBytes.get(request.tools);
    if (tools === undefined) {
      tools = encoder.encode(`,"tools":${JSON.stringify(request.tools)},"tool_choice":"auto"`);
      toolsBytes.set(request.tools, tools);
    }
  }
  const model = JSON.stringify(request.model ?? defaults.model);
  const messages = JSON.stringify(request.messages.map(toWireMessage));
  const temperature = JSON.stringify(request.temperature ?? defaults.temperature);
  const head = encoder.encode(`{"model":${model},"messages":${messages}`);
  const tail = encoder.encode(`,"temperature":${temperature},"stream":false}`);
  const body = new Uint8Array(head.length + (tools?.length ?? 0) + tail.length);
  body.set(head, 0);
  if (tools) body.set(tools, head.length);
  body.set(tail, body.length - tail.length);
  return body;
}

function toWireMessage(message: ChatMessage): Record<string, unknown> {
  const wire: Record<string, unknown> = { role: message.role };
  if (message.content !== undefined) wire.content = message.content;
  if (message.toolCallId) wire.tool_call_id = message.toolCallId;
  if (message.toolCalls && message.toolCalls.length > 0) {
    wire.tool_calls = message.toolCalls.map((call) => ({
      id: call.id,
      type: 'function',
      function: { name: call.name, arguments: JSON.stringify(call.arguments) },
    }));
  }
  return wire;
}

/**
 * Reads a parsed chat-completions body; `undefined` when it has no first choice with a message.
 * Also reads what some providers send instead of the current shape: `content` as an array of parts
 * (the text parts are joined) and the legacy `function_call` (one call, when there are no `tool_calls`).
 */
export function fromWireCompletion(completion: unknown): LlmCompletionResponse | undefined {
  const choices = (completion as { choices?: unknown } | null)?.choices;
  const choice = Array.isArray(choices) ? (choices[0] as Record<string, unknown> | undefined) : undefined;
  const message = choice?.message as Record<string, unknown> | undefined;
  if (typeof message !== 'object' || message === null) return undefined;
  let rawCalls: unknown[] = Array.isArray(message.tool_calls) ? message.tool_calls : [];
  if (rawCalls.length === 0 && typeof message.function_call === 'object' && message.function_call !== null) {
    rawCalls = [{ function: message.function_call }];
  }
  const toolCalls = rawCalls.map((raw: unknown, index: number): ToolCallRequest => {
    const call = (raw ?? {}) as Record<string, unknown>;
    const fn = (call.function ?? {}) as Record<string, unknown>;
    const parsed = parseArguments(fn.arguments);
    return {
      id: typeof call.id === 'string' && call.id !== '' ? call.id : `call_${index}`,
      name: typeof fn.name === 'string' ? fn.name : '',
      arguments: parsed.value,
      ...(parsed.error ? { argumentsError: parsed.error } : {}),
    };
  });
  const finish = choice?.finish_reason;
  const finishReason: FinishReason =
    finish === 'function_call' ? 'tool_calls' : finish === 'tool_calls' || finish === 'length' || finish === 'content_filter' ? finish : 'stop';
  return {
    content: contentText(message.content),
    toolCalls,
    finishReason,
    usage: parseUsage((completion as Record<string, unknown>).usage),
  };
}

/** A string content as is; an array of parts as its text parts joined (`null` when it has none). */
function contentText(content: unknown): string | null {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return null;
  const texts: string[] = [];
  for (const part of content) {
    if (typeof part === 'string') texts.push(part);
    else if (typeof part === 'object' && part !== null && typeof (part as { text?: unknown }).text === 'string') texts.push((part as { text: string }).text);
  }
  return texts.length === 0 ? null : texts.join('');
}

function parseArguments(raw: unknown): { value: Record<string, unknown>; error?: 'not-json' | 'not-object' } {
  if (raw === undefined || raw === null || raw === '') return { value: {} };
  let value: unknown = raw;
  if (typeof raw === 'string') {
    try {
      value = JSON.parse(raw);
    } catch {
      return { value: {}, error: 'not-json' };
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { value: {}, error: 'not-object' };
  return { value: value as Record<string, unknown> };
}

function parseUsage(raw: unknown): TokenUsage | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const usage = raw as Record<string, unknown>;
  const promptTokens = typeof usage.prompt_tokens === 'number' ? usage.prompt_tokens : 0;
  const completionTokens = typeof usage.completion_tokens === 'number' ? usage.completion_tokens : 0;
  const totalTokens = typeof usage.total_tokens === 'number' ? usage.total_tokens : promptTokens + completionTokens;
  return { promptTokens, completionTokens, totalTokens };
}

/** mana-llm reports `{ detail: { kind } }` on errors (docs/wire-contract.md#llm-requests); only a short slug is kept. */
export function providerDetailKind(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const detail = (body as Record<string, unknown>).detail ?? body;
  const kind = typeof detail === 'object' && detail !== null ? (detail as Record<string, unknown>).kind : undefined;
  return typeof kind === 'string' && /^[a-z_-]{1,32}$/.test(kind) ? kind : undefined;
}

/** `retry-after-ms`, else `retry-after` (seconds or an HTTP date), in ms. */
export function parseRetryAfter(header: (name: string) => string | undefined): number | undefined {
  const value = header('retry-after-ms');
  if (value !== undefined && Number.isFinite(Number(value))) return Math.max(0, Number(value));
  const seconds = header('retry-after');
  if (seconds === undefined) return undefined;
  if (Number.isFinite(Number(seconds))) return Math.max(0, Number(seconds) * 1000);
  const date = Date.parse(seconds);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

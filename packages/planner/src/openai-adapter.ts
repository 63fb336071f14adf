import type { EventChannel, TokenUsage } from '@mana-ai/core';
import OpenAI from 'openai';
import { PlannerError, ProviderCallError, type ProviderErrorKind, RETRYABLE_PROVIDER_ERROR_KINDS } from './errors.js';
import type { PlannerEvents } from './events.js';
import type { ChatMessage, FinishReason, LlmAdapter, LlmCompletionRequest, LlmCompletionResponse, ToolCallRequest } from './llm.js';

/** How the adapter sends the API key. */
export type AuthHeaderStyle = 'bearer' | 'x-api-key';

/** Options of {@link createOpenAiCompatibleAdapter}. */
export interface OpenAiCompatibleAdapterOptions {
  /** Server root, e.g. `http://localhost:3020` (`MANA_LLM_URL`). */
  baseUrl: string;
  /** Path between the root and `/chat/completions` (default `/v1`). */
  apiPrefix?: string;
  /** API key; without one no auth header is sent. */
  apiKey?: string;
  /** `bearer` sends `Authorization: Bearer <key>`, `x-api-key` sends `X-API-Key: <key>` (default `bearer`). */
  authStyle?: AuthHeaderStyle;
  /** Model when a request names none (default `mana/reasoning`). */
  model?: string;
  /** Temperature when a request names none (default `0.3`). */
  temperature?: number;
  /** Time for one attempt, headers and body (default `120000` ms). */
  timeoutMs?: number;
  /** Retries after the first attempt for retryable kinds (default `2`). */
  maxRetries?: number;
  /** First backoff delay; doubles per retry, with jitter (default `500` ms). */
  retryBaseDelayMs?: number;
  /** Upper bound of one backoff delay, also for `retry-after` (default `10000` ms). */
  retryMaxDelayMs?: number;
  /** Error kinds that are retried (default `rate-limit`, `server`, `unreachable`). */
  retryOn?: readonly ProviderErrorKind[];
  /** Label in events and errors (default: the host of `baseUrl`). */
  provider?: string;
  /** Extra request headers. */
  headers?: Readonly<Record<string, string>>;
}

/** Collaborators of {@link createOpenAiCompatibleAdapter}. */
export interface OpenAiCompatibleAdapterDeps {
  /** The fetch implementation handed to the `openai` client (default: global fetch). */
  fetch?: typeof fetch;
  /** Waits between retries (default: a timer). */
  sleep?: (ms: number) => Promise<void>;
  /** Jitter source in [0, 1) (default `Math.random`). */
  random?: () => number;
  /** Receives `planner.provider-retry` events. */
  events?: EventChannel<PlannerEvents>;
}

/** Defaults of the adapter options. */
export const OPENAI_ADAPTER_DEFAULTS = {
  apiPrefix: '/v1',
  authStyle: 'bearer' as AuthHeaderStyle,
  model: 'mana/reasoning',
  temperature: 0.3,
  timeoutMs: 120_000,
  maxRetries: 2,
  retryBaseDelayMs: 500,
  retryMaxDelayMs: 10_000,
} as const;

const DETAIL_KIND = Symbol('detailKind');

/** The `openai` client keeps only `body.error`; mana-llm reports its kind in `body.detail`. */
class ProviderClient extends OpenAI {
  protected override makeStatusError(status: number, error: object, message: string | undefined, headers: Headers) {
    const apiError = super.makeStatusError(status, error, message, headers);
    Object.defineProperty(apiError, DETAIL_KIND, { value: providerDetailKind(error), enumerable: false });
    return apiError;
  }
}

interface Failure {
  kind: ProviderErrorKind;
  status?: number;
  retryAfterMs?: number;
  message: string;
}

/**
 * Creates an {@link LlmAdapter} for any OpenAI-compatible chat-completions endpoint (mana-llm,
 * OpenAI, vLLM, Ollama …) on the official `openai` client. The client's own retries are off: the
 * adapter retries retryable kinds itself with exponential backoff (honouring `retry-after`),
 * bounds every attempt including the body read, and maps failures to {@link ProviderCallError}.
 */
export function createOpenAiCompatibleAdapter(
  deps: OpenAiCompatibleAdapterDeps,
  options: OpenAiCompatibleAdapterOptions,
): LlmAdapter {
  const settings = { ...OPENAI_ADAPTER_DEFAULTS, ...options };
  let root: URL;
  try {
    root = new URL(settings.baseUrl);
  } catch (cause) {
    throw new PlannerError('PLANNER_INVALID_OPTIONS', 'baseUrl must be an absolute URL', { cause });
  }
  for (const key of ['timeoutMs', 'maxRetries', 'retryBaseDelayMs', 'retryMaxDelayMs'] as const) {
    const value = settings[key];
    if (!Number.isInteger(value) || value < 0) {
      throw new PlannerError('PLANNER_INVALID_OPTIONS', `${key} must be a non-negative integer`);
    }
  }
  if (settings.authStyle !== 'bearer' && settings.authStyle !== 'x-api-key') {
    throw new PlannerError('PLANNER_INVALID_OPTIONS', 'authStyle must be bearer or x-api-key');
  }
  const provider = options.provider ?? root.host;
  const retryOn = new Set(settings.retryOn ?? RETRYABLE_PROVIDER_ERROR_KINDS);
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const random = deps.random ?? Math.random;
  const authHeaders: Record<string, string | null> =
    settings.apiKey && settings.authStyle === 'x-api-key'
      ? { Authorization: null, 'X-API-Key': settings.apiKey }
      : settings.apiKey
        ? {}
        : { Authorization: null };
  const client = new ProviderClient({
    baseURL: `${settings.baseUrl.replace(/\/+$/, '')}${settings.apiPrefix}`,
    // The client insists on a key; the placeholder never leaves the process (its header is removed).
    apiKey: settings.apiKey && settings.authStyle === 'bearer' ? settings.apiKey : 'unused',
    organization: null,
    project: null,
    maxRetries: 0,
    timeout: Math.max(settings.timeoutMs, 1),
    defaultHeaders: { ...authHeaders, ...settings.headers },
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
  });

  async function attempt(request: LlmCompletionRequest): Promise<LlmCompletionResponse> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, settings.timeoutMs);
    const onCallerAbort = (): void => controller.abort();
    request.signal?.addEventListener('abort', onCallerAbort, { once: true });
    try {
      const body = {
        model: request.model ?? settings.model,
        messages: request.messages.map(toWireMessage),
        ...(request.tools.length > 0 ? { tools: request.tools, tool_choice: 'auto' } : {}),
        temperature: request.temperature ?? settings.temperature,
        stream: false,
      };
      const completion: unknown = await client.chat.completions.create(body as unknown as OpenAI.ChatCompletionCreateParamsNonStreaming, {
        signal: controller.signal,
        maxRetries: 0,
      });
      return parseCompletion(completion);
    } catch (error) {
      if (request.signal?.aborted) throw error;
      throw classify(error, timedOut);
    } finally {
      clearTimeout(timer);
      request.signal?.removeEventListener('abort', onCallerAbort);
    }
  }

  return {
    provider,
    defaultModel: settings.model,
    async complete(request) {
      for (let attemptNumber = 1; ; attemptNumber++) {
        try {
          return await attempt(request);
        } catch (error) {
          if (!isFailure(error)) throw error;
          const canRetry = retryOn.has(error.kind) && attemptNumber <= settings.maxRetries;
          if (!canRetry) {
            throw new ProviderCallError(error.kind, error.message, {
              provider,
              attempts: attemptNumber,
              ...(error.status === undefined ? {} : { status: error.status }),
              ...(error.retryAfterMs === undefined ? {} : { retryAfterSeconds: error.retryAfterMs / 1000 }),
            });
          }
          const backoff = settings.retryBaseDelayMs * 2 ** (attemptNumber - 1) * (0.5 + random() / 2);
          const delayMs = Math.round(Math.min(error.retryAfterMs ?? backoff, settings.retryMaxDelayMs));
          deps.events?.emit('planner.provider-retry', { provider, kind: error.kind, status: error.status, attempt: attemptNumber, delayMs });
          await sleep(delayMs);
        }
      }
    },
  };
}

const FAILURE = Symbol('failure');

function failure(value: Failure): Failure & { [FAILURE]: true } {
  return { ...value, [FAILURE]: true };
}

function isFailure(value: unknown): value is Failure {
  return typeof value === 'object' && value !== null && FAILURE in value;
}

/** Maps whatever the client threw to a failure kind, never copying the provider's body text. */
function classify(error: unknown, timedOut: boolean): Failure {
  if (isFailure(error)) return error;
  if (timedOut || error instanceof OpenAI.APIConnectionTimeoutError) {
    return failure({ kind: 'timeout', message: 'LLM provider did not answer in time' });
  }
  if (error instanceof OpenAI.APIError && typeof error.status === 'number') {
    const status = error.status;
    const retryAfterMs = parseRetryAfter(error.headers);
    const detailKind = (error as { [DETAIL_KIND]?: string })[DETAIL_KIND] ?? providerDetailKind(error.error);
    let kind: ProviderErrorKind;
    if (status === 401 || status === 403 || detailKind === 'auth') kind = 'auth';
    else if (status === 429 || detailKind === 'rate_limit') kind = 'rate-limit';
    else if (status === 408) kind = 'timeout';
    else if (status >= 500) kind = 'server';
    else kind = 'rejected';
    return failure({
      kind,
      status,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      message: `LLM provider answered HTTP ${status} (${kind}${detailKind ? `, ${detailKind}` : ''})`,
    });
  }
  if (error instanceof OpenAI.APIConnectionError) {
    return failure({ kind: 'unreachable', message: 'LLM provider is unreachable' });
  }
  if (error instanceof SyntaxError) {
    return failure({ kind: 'bad-response', message: 'LLM provider answered with malformed JSON' });
  }
  return failure({ kind: 'bad-response', message: 'LLM provider answer could not be read' });
}

/** mana-llm reports `{ detail: { kind } }` on errors (UPSTREAM §6.12). */
function providerDetailKind(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const detail = (body as Record<string, unknown>).detail ?? body;
  const kind = typeof detail === 'object' && detail !== null ? (detail as Record<string, unknown>).kind : undefined;
  return typeof kind === 'string' && /^[a-z_-]{1,32}$/.test(kind) ? kind : undefined;
}

function parseRetryAfter(headers: Headers | undefined): number | undefined {
  const value = headers?.get('retry-after-ms') ?? undefined;
  if (value !== undefined && Number.isFinite(Number(value))) return Math.max(0, Number(value));
  const seconds = headers?.get('retry-after') ?? undefined;
  if (seconds === undefined) return undefined;
  if (Number.isFinite(Number(seconds))) return Math.max(0, Number(seconds) * 1000);
  const date = Date.parse(seconds);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
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

function parseCompletion(completion: unknown): LlmCompletionResponse {
  const choices = (completion as { choices?: unknown } | null)?.choices;
  const choice = Array.isArray(choices) ? (choices[0] as Record<string, unknown> | undefined) : undefined;
  const message = choice?.message as Record<string, unknown> | undefined;
  if (typeof message !== 'object' || message === null) {
    throw failure({ kind: 'bad-response', message: 'LLM provider answer has no choices' });
  }
  const rawCalls = Array.isArray(message.tool_calls) ? message.tool_calls : [];
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
  const finishReason: FinishReason = finish === 'tool_calls' || finish === 'length' || finish === 'content_filter' ? finish : 'stop';
  return {
    content: typeof message.content === 'string' ? message.content : null,
    toolCalls,
    finishReason,
    usage: parseUsage((completion as Record<string, unknown>).usage),
  };
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

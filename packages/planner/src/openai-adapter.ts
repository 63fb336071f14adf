import type { EventChannel } from '@mana-ai/core';
import { PlannerError, ProviderCallError, type ProviderErrorKind, RETRYABLE_PROVIDER_ERROR_KINDS } from './errors.js';
import type { PlannerEvents } from './events.js';
import type { LlmAdapter, LlmCompletionRequest, LlmCompletionResponse } from './llm.js';
import { type LlmHttpResponse, type LlmTransport, createFetchTransport } from './llm-transport.js';
import { fromWireCompletion, parseRetryAfter, providerDetailKind, toWireBody } from './openai-wire.js';
import type { BodyRead } from './read-body.js';

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
  /** Largest response body read, in bytes; past it the call fails with kind `too-large` (default `1048576`, 1 MiB). */
  maxResponseBytes?: number;
}

/** Collaborators of {@link createOpenAiCompatibleAdapter}. */
export interface OpenAiCompatibleAdapterDeps {
  /** The fetch implementation (default: the global `fetch`, looked up per call); unused with `transport`. */
  fetch?: typeof fetch;
  /** Sends the requests (default: {@link createFetchTransport} over `fetch`); a host may inject a cheaper one. */
  transport?: LlmTransport;
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
  maxResponseBytes: 1_048_576,
} as const;

/** A failed attempt, before it becomes a {@link ProviderCallError} (or is retried). */
class AttemptFailure extends Error {
  /** Kind `too-large`: bytes that arrived before reading stopped. */
  readonly receivedBytes: number | undefined;

  constructor(
    readonly kind: ProviderErrorKind,
    message: string,
    readonly status?: number,
    readonly retryAfterMs?: number,
    options?: { cause?: unknown; receivedBytes?: number },
  ) {
    super(message, options);
    this.receivedBytes = options?.receivedBytes;
  }
}

type Settings = OpenAiCompatibleAdapterOptions & Required<Pick<OpenAiCompatibleAdapterOptions, keyof typeof OPENAI_ADAPTER_DEFAULTS>>;

/**
 * Creates an {@link LlmAdapter} for any OpenAI-compatible chat-completions endpoint (mana-llm,
 * OpenAI, vLLM, Ollama …) over plain `fetch` (or an injected {@link LlmTransport}), in Node and browsers alike. It retries retryable kinds
 * with exponential backoff (honouring `retry-after`), bounds every attempt including the body read,
 * reads at most `maxResponseBytes` of an answer, and maps failures to {@link ProviderCallError}.
 */
export function createOpenAiCompatibleAdapter(deps: OpenAiCompatibleAdapterDeps, options: OpenAiCompatibleAdapterOptions): LlmAdapter {
  const settings: Settings = { ...OPENAI_ADAPTER_DEFAULTS, ...options };
  const { endpoint, host } = validate(settings);
  const headers = requestHeaders(settings);
  const provider = options.provider ?? host;
  const retryOn = new Set(settings.retryOn ?? RETRYABLE_PROVIDER_ERROR_KINDS);
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const random = deps.random ?? Math.random;
  const transport = deps.transport ?? createFetchTransport(deps.fetch);

  async function attempt(request: LlmCompletionRequest): Promise<LlmCompletionResponse> {
    const controller = new AbortController();
    let timedOut = false;
    let answered = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, settings.timeoutMs);
    const onCallerAbort = (): void => controller.abort(request.signal?.reason);
    request.signal?.addEventListener('abort', onCallerAbort, { once: true });
    try {
      request.signal?.throwIfAborted();
      let response: LlmHttpResponse;
      try {
        response = await transport({ url: endpoint, headers, body: toWireBody(request, settings), signal: controller.signal });
      } catch (cause) {
        throw timedOut
          ? new AttemptFailure('timeout', 'LLM provider did not answer in time', undefined, undefined, { cause })
          : new AttemptFailure('unreachable', 'LLM provider is unreachable', undefined, undefined, { cause });
      }
      if (response.status < 200 || response.status > 299) throw await statusFailure(response, settings.maxResponseBytes);
      const completion = await readCompletion(response, settings.maxResponseBytes, () => timedOut);
      answered = true;
      return completion;
    } catch (error) {
      if (request.signal?.aborted) throw request.signal.reason;
      throw error;
    } finally {
      clearTimeout(timer);
      request.signal?.removeEventListener('abort', onCallerAbort);
      // Releases whatever is left of an answer not read to its end. Not after a complete answer: an
      // abort builds a DOMException with a stack trace, a measurable share of a plan's CPU.
      if (!answered) controller.abort();
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
          if (!(error instanceof AttemptFailure)) throw error;
          if (!retryOn.has(error.kind) || attemptNumber > settings.maxRetries) {
            throw new ProviderCallError(error.kind, error.message, {
              provider,
              attempts: attemptNumber,
              ...(error.cause === undefined ? {} : { cause: error.cause }),
              ...(error.status === undefined ? {} : { status: error.status }),
              ...(error.retryAfterMs === undefined ? {} : { retryAfterSeconds: error.retryAfterMs / 1000 }),
              ...(error.receivedBytes === undefined ? {} : { receivedBytes: error.receivedBytes }),
            });
          }
          const backoff = settings.retryBaseDelayMs * 2 ** (attemptNumber - 1) * (0.5 + random() / 2);
          const delayMs = Math.round(Math.min(error.retryAfterMs ?? backoff, settings.retryMaxDelayMs));
          deps.events?.emit('planner.provider-retry', { provider, kind: error.kind, status: error.status, attempt: attemptNumber, delayMs });
          await untilAborted(sleep(delayMs), request.signal);
        }
      }
    },
  };
}

function validate(settings: Settings): { endpoint: string; host: string } {
  let root: URL;
  let endpoint: string;
  try {
    root = new URL(settings.baseUrl);
    endpoint = new URL(`${settings.baseUrl.replace(/\/+$/, '')}${settings.apiPrefix.replace(/\/+$/, '')}/chat/completions`).href;
  } catch (cause) {
    throw new PlannerError('PLANNER_INVALID_OPTIONS', 'baseUrl must be an absolute URL', { cause });
  }
  for (const key of ['timeoutMs', 'maxRetries', 'retryBaseDelayMs', 'retryMaxDelayMs'] as const) {
    const value = settings[key];
    if (!Number.isInteger(value) || value < 0) {
      throw new PlannerError('PLANNER_INVALID_OPTIONS', `${key} must be a non-negative integer`);
    }
  }
  if (!Number.isSafeInteger(settings.maxResponseBytes) || settings.maxResponseBytes < 1) {
    throw new PlannerError('PLANNER_INVALID_OPTIONS', 'maxResponseBytes must be a positive integer');
  }
  if (settings.authStyle !== 'bearer' && settings.authStyle !== 'x-api-key') {
    throw new PlannerError('PLANNER_INVALID_OPTIONS', 'authStyle must be bearer or x-api-key');
  }
  return { endpoint, host: root.host };
}

/** JSON headers, the key in the configured style (none without a key), then the extra headers (they win). */
function requestHeaders(settings: Settings): Record<string, string> {
  try {
    const headers = new Headers({ 'content-type': 'application/json', accept: 'application/json' });
    if (settings.apiKey && settings.authStyle === 'x-api-key') headers.set('x-api-key', settings.apiKey);
    else if (settings.apiKey) headers.set('authorization', `Bearer ${settings.apiKey}`);
    for (const [name, value] of Object.entries(settings.headers ?? {})) headers.set(name, value);
    const record: Record<string, string> = {};
    headers.forEach((value, name) => {
      record[name] = value;
    });
    return record;
  } catch (cause) {
    // The cause names the header only; the value (perhaps a key) is not echoed.
    throw new PlannerError('PLANNER_INVALID_OPTIONS', 'apiKey and headers must be valid HTTP header values', { cause });
  }
}

/** Classifies a non-2xx answer by status and mana-llm's `detail.kind`, never copying the body text. */
async function statusFailure(response: LlmHttpResponse, maxBytes: number): Promise<AttemptFailure> {
  const status = response.status;
  // The body only refines the kind: one that cannot be read (or is too large) leaves the status to decide.
  const text = (await response.readBody(maxBytes).catch(() => undefined))?.text;
  let detailKind: string | undefined;
  try {
    detailKind = text === undefined ? undefined : providerDetailKind(JSON.parse(text));
  } catch {
    detailKind = undefined;
  }
  let kind: ProviderErrorKind;
  if (status === 401 || status === 403 || detailKind === 'auth') kind = 'auth';
  else if (status === 429 || detailKind === 'rate_limit') kind = 'rate-limit';
  else if (status === 408) kind = 'timeout';
  else if (status >= 500) kind = 'server';
  else kind = 'rejected';
  const message = `LLM provider answered HTTP ${status} (${kind}${detailKind ? `, ${detailKind}` : ''})`;
  return new AttemptFailure(kind, message, status, parseRetryAfter((name) => response.header(name)));
}

async function readCompletion(response: LlmHttpResponse, maxBytes: number, timedOut: () => boolean): Promise<LlmCompletionResponse> {
  let read: BodyRead;
  try {
    read = await response.readBody(maxBytes);
  } catch (cause) {
    throw timedOut()
      ? new AttemptFailure('timeout', 'LLM provider did not answer in time', undefined, undefined, { cause })
      : new AttemptFailure('bad-response', 'LLM provider answer could not be read', undefined, undefined, { cause });
  }
  if (read.text === undefined) {
    throw new AttemptFailure('too-large', `LLM provider answer exceeds ${maxBytes} bytes`, response.status, undefined, { receivedBytes: read.receivedBytes });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(read.text);
  } catch {
    throw new AttemptFailure('bad-response', 'LLM provider answered with malformed JSON');
  }
  const completion = fromWireCompletion(parsed);
  if (!completion) throw new AttemptFailure('bad-response', 'LLM provider answer has no choices');
  return completion;
}

/** `promise`, or the caller's abort reason as soon as `signal` aborts (a retry wait ends at once). */
function untilAborted(promise: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return promise;
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

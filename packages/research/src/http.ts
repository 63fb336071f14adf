import { ResearchError, type ResearchOperation } from './errors.js';

/** The `fetch` the clients use: the global one by default, injected in tests and by the runner. */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** One JSON request of a research client. */
export interface JsonRequest {
  operation: ResearchOperation;
  url: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: unknown;
  timeoutMs: number;
}

/**
 * Sends one request and parses its JSON body. The timeout covers the whole exchange including the
 * body (a service that sends headers and then stalls still times out). Non-2xx answers, timeouts,
 * network failures and unparsable bodies become a {@link ResearchError}; the error never carries the
 * request or response body.
 */
export async function requestJson(fetchFn: FetchLike, request: JsonRequest): Promise<unknown> {
  const { operation, timeoutMs } = request;
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  try {
    let response: Response;
    try {
      response = await fetchFn(request.url, {
        method: request.method,
        headers: request.headers,
        ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
        signal: controller.signal,
      });
    } catch (error) {
      throw transportError(operation, timedOut, timeoutMs, error);
    }
    if (!response.ok) {
      // Drain the body so the connection can be reused; its content is never surfaced.
      await response.arrayBuffer().catch(() => undefined);
      throw new ResearchError('RESEARCH_HTTP_STATUS', `${operation} answered ${response.status}`, {
        operation,
        status: response.status,
        retryable: response.status >= 500 || response.status === 408 || response.status === 429,
      });
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw transportError(operation, timedOut, timeoutMs, error);
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (error) {
      throw new ResearchError('RESEARCH_MALFORMED_RESPONSE', `${operation} answered a body that is not JSON`, {
        operation,
        cause: error,
      });
    }
  } finally {
    clearTimeout(timer);
  }
}

function transportError(operation: ResearchOperation, timedOut: boolean, timeoutMs: number, cause: unknown): ResearchError {
  if (timedOut) {
    return new ResearchError('RESEARCH_TIMEOUT', `${operation} timed out after ${timeoutMs} ms`, {
      operation,
      cause,
      retryable: true,
      details: { timeoutMs },
    });
  }
  return new ResearchError('RESEARCH_NETWORK', `${operation} failed before an answer arrived`, {
    operation,
    cause,
    retryable: true,
  });
}

/** A malformed-response error for a JSON body of the wrong shape. */
export function malformed(operation: ResearchOperation, what: string): ResearchError {
  return new ResearchError('RESEARCH_MALFORMED_RESPONSE', `${operation} answered ${what}`, { operation });
}

/** Strips trailing slashes so `<base>/api/…` never has `//`. */
export function trimBaseUrl(baseUrl: string): string {
  let parsed: URL;
  try {
    parsed = new URL(baseUrl);
  } catch (error) {
    throw new ResearchError('RESEARCH_INVALID_OPTIONS', 'baseUrl is not an absolute URL', {
      operation: 'config',
      cause: error,
    });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ResearchError('RESEARCH_INVALID_OPTIONS', 'baseUrl must use http or https', { operation: 'config' });
  }
  return baseUrl.replace(/\/+$/, '');
}

/** Throws `RESEARCH_INVALID_OPTIONS` unless `value` is a positive finite number. */
export function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new ResearchError('RESEARCH_INVALID_OPTIONS', `${name} must be a positive number`, { operation: 'config' });
  }
  return value;
}

/** True for a non-null, non-array object. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

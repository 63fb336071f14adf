import { type BodyRead, readBodyUpTo } from './read-body.js';

/** One chat-completions POST of the adapter. */
export interface LlmHttpRequest {
  url: string;
  headers: Readonly<Record<string, string>>;
  /**
   * The JSON body, UTF-8 encoded (the tool catalog's part, the bulk of it, is encoded once per
   * catalog). `node:http` and undici send it as given; `fetch` gets it as a `Blob`, which it can
   * send again when it follows a 307/308 redirect (a typed array's buffer is consumed on the first send).
   */
  body: Uint8Array<ArrayBuffer>;
  /** Aborts the call, before the headers arrive or while the body is read. */
  signal: AbortSignal;
}

/** An answer whose status and headers have arrived; its body is read on request. */
export interface LlmHttpResponse {
  status: number;
  /** The value of a header (name in lower case), `undefined` when it is absent. */
  header(name: string): string | undefined;
  /**
   * Reads the body as UTF-8 text, holding at most `maxBytes` of it: a longer body is dropped where
   * it crosses the cap and yields no text but the bytes that arrived. Rejects when reading fails or
   * the request's signal aborts.
   */
  readBody(maxBytes: number): Promise<BodyRead>;
}

/**
 * How the OpenAI-compatible adapter sends a request: resolves once status and headers are there,
 * rejects when the provider cannot be reached (or the signal aborts first). The default,
 * {@link createFetchTransport}, runs wherever `fetch` does; a host may inject a cheaper one.
 */
export type LlmTransport = (request: LlmHttpRequest) => Promise<LlmHttpResponse>;

/**
 * An {@link LlmTransport} over `fetch` (default: the global `fetch`, looked up per call), with the
 * body read by {@link readBodyUpTo}. Browsers and Node alike.
 */
export function createFetchTransport(fetchImplementation?: typeof fetch): LlmTransport {
  return async ({ url, headers, body, signal }) => {
    // Called unbound: a browser's fetch throws "Illegal invocation" when called as a method.
    const send = fetchImplementation ?? globalThis.fetch;
    const response = await send(url, { method: 'POST', headers, body: new Blob([body]), signal });
    return {
      status: response.status,
      header: (name) => response.headers.get(name) ?? undefined,
      readBody: (maxBytes) => readBodyUpTo(response, maxBytes),
    };
  };
}

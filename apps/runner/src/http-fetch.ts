import { Agent, type IncomingMessage, request } from 'node:http';

/** A `fetch` for the runner's outbound calls, with the keep-alive connections it holds. */
export interface HttpFetch {
  readonly fetch: typeof fetch;
  /** Closes the pooled connections (at shutdown). */
  close(): void;
}

/**
 * Creates a `fetch` that sends plain-`http:` requests with a string or byte body through `node:http`
 * on keep-alive connections, and hands every other call to the global `fetch`. The LLM calls are the
 * runner's hottest outbound path, and Node's built-in `fetch` costs about as much CPU per call as
 * `node:http` and the whole planner loop together. What the adapters rely on is kept: a real `Response`
 * whose body is streamed with backpressure (so the response-size bound cuts a large answer at the
 * chunk that crosses it), the abort signal ending the call before or after the headers, and
 * redirects, which are followed by re-sending the call through the global `fetch`.
 */
export function createHttpFetch(): HttpFetch {
  const agent = new Agent({ keepAlive: true });
  const fallback = (input: Parameters<typeof fetch>[0], init?: RequestInit) => globalThis.fetch(input, init);

  async function httpFetch(input: Parameters<typeof fetch>[0], init: RequestInit = {}): Promise<Response> {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : undefined;
    const body = init.body ?? undefined;
    if (url === undefined || !url.startsWith('http:') || !(body === undefined || typeof body === 'string' || body instanceof Uint8Array)) {
      return fallback(input, init);
    }
    const signal = init.signal ?? undefined;
    signal?.throwIfAborted();
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const outgoing = request(url, { method: init.method ?? 'GET', headers: headerRecord(init.headers), agent, ...(signal ? { signal } : {}) }, resolve);
      outgoing.on('error', (error) => reject(signal?.aborted ? signal.reason : error));
      outgoing.end(body);
    });
    const status = response.statusCode ?? 0;
    if (status >= 300 && status < 400 && response.headers.location !== undefined) {
      response.resume();
      return fallback(input, init);
    }
    const headers = new Headers();
    const raw = response.rawHeaders;
    for (let index = 0; index + 1 < raw.length; index += 2) headers.append(raw[index] as string, raw[index + 1] as string);
    const noBody = status === 204 || status === 205 || status === 304 || init.method === 'HEAD';
    if (noBody) response.resume();
    return new Response(noBody ? null : bodyStream(response, signal), { status, statusText: response.statusMessage ?? '', headers });
  }

  return { fetch: httpFetch as typeof fetch, close: () => agent.destroy() };
}

/** `init.headers` as the plain record `node:http` takes (the planner passes one already). */
function headerRecord(headers: RequestInit['headers']): Record<string, string> {
  if (headers === undefined) return {};
  if (!(headers instanceof Headers) && !Array.isArray(headers)) return headers as Record<string, string>;
  const record: Record<string, string> = {};
  new Headers(headers).forEach((value, name) => {
    record[name] = value;
  });
  return record;
}

/**
 * The body as a web stream that reads one chunk ahead of its reader (paused otherwise), errors when
 * the connection ends early or `signal` aborts, and drops the connection when cancelled.
 */
function bodyStream(response: IncomingMessage, signal: AbortSignal | undefined): ReadableStream<Uint8Array> {
  let settled = false;
  const onAbort = (): void => {
    response.destroy(signal?.reason);
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      const finish = (error?: unknown): void => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        if (error === undefined) controller.close();
        else controller.error(error);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      response.on('data', (chunk: Buffer) => {
        controller.enqueue(chunk);
        if ((controller.desiredSize ?? 0) <= 0) response.pause();
      });
      response.once('end', () => finish());
      response.on('error', (error) => finish(signal?.aborted ? signal.reason : error));
      response.once('close', () => finish(response.complete ? undefined : new Error('the connection closed before the response ended')));
    },
    pull() {
      response.resume();
    },
    cancel() {
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      response.destroy();
    },
  });
}

import { Agent, type IncomingMessage, request } from 'node:http';
import { type LlmHttpRequest, type LlmHttpResponse, type LlmTransport, createFetchTransport } from '@mana-ai/planner';

/** The runner's LLM transport, with the keep-alive connections it holds. */
export interface HttpTransport {
  readonly transport: LlmTransport;
  /** Closes the pooled connections (at shutdown). */
  close(): void;
}

/**
 * Creates the planner's {@link LlmTransport} of the runner: requests to a plain-`http:` LLM go
 * through `node:http` on keep-alive connections, others (`https:`) through `fetch`. The LLM calls
 * are the runner's hottest outbound path, and Node's built-in `fetch`, with the web streams and
 * `Response` it builds, costs several times the CPU of `node:http` per call. The response-size
 * bound is kept (a body is dropped with its connection where it crosses the cap), the request's
 * signal ends the call before or after the headers, and a redirect is re-sent through `fetch`, which
 * follows it.
 */
export function createHttpTransport(): HttpTransport {
  const agent = new Agent({ keepAlive: true });
  const viaFetch = createFetchTransport();

  async function transport(call: LlmHttpRequest): Promise<LlmHttpResponse> {
    if (!call.url.startsWith('http:')) return viaFetch(call);
    const { signal } = call;
    signal.throwIfAborted();
    let abort: () => void = () => {};
    const onAbort = (): void => abort();
    signal.addEventListener('abort', onAbort, { once: true });
    const release = (): void => signal.removeEventListener('abort', onAbort);
    const send = (): Promise<IncomingMessage> =>
      new Promise<IncomingMessage>((resolve, reject) => {
        const outgoing = request(call.url, { method: 'POST', headers: call.headers, agent }, resolve);
        outgoing.on('error', (error) => {
          // A kept-alive connection the server closed as this request went out: nothing was
          // answered on it, so the request is sent once more on a new connection (Node's docs,
          // `request.reusedSocket`) instead of failing as unreachable and waiting for a retry.
          if (!signal.aborted && outgoing.reusedSocket && isStaleConnection(error)) send().then(resolve, reject);
          else reject(signal.aborted ? signal.reason : error);
        });
        abort = () => outgoing.destroy(signal.reason);
        outgoing.end(call.body);
      });
    let response: IncomingMessage;
    try {
      response = await send();
    } catch (error) {
      release();
      throw error;
    }
    const status = response.statusCode ?? 0;
    if (status >= 300 && status < 400 && response.headers.location !== undefined) {
      release();
      response.resume();
      return viaFetch(call);
    }
    // An error before the body is read (an abort, a dropped connection) is kept for readBody.
    let failure: unknown;
    response.on('error', (error) => {
      failure ??= error;
    });
    abort = () => response.destroy(signal.reason);
    return {
      status,
      header: (name) => {
        const value = response.headers[name];
        return Array.isArray(value) ? value.join(', ') : value;
      },
      readBody: (maxBytes) => readBody(response, maxBytes, () => (signal.aborted ? signal.reason : failure)).finally(release),
    };
  }

  return { transport, close: () => agent.destroy() };
}

/** The errors of a request on a kept-alive connection that the server had closed. */
function isStaleConnection(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ECONNRESET' || code === 'EPIPE';
}

/** See {@link LlmHttpResponse.readBody}: UTF-8 as `fetch` decodes it, the connection dropped past `maxBytes`. */
function readBody(response: IncomingMessage, maxBytes: number, failure: () => unknown): ReturnType<LlmHttpResponse['readBody']> {
  const ended = () => failure() ?? new Error('the connection closed before the response ended');
  if (response.destroyed) return Promise.reject(ended());
  if (Number(response.headers['content-length'] ?? Number.NaN) > maxBytes) {
    response.destroy();
    return Promise.resolve({ text: undefined, receivedBytes: maxBytes });
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    response.on('data', (chunk: Buffer) => {
      received += chunk.byteLength;
      if (received > maxBytes) {
        response.destroy();
        resolve({ text: undefined, receivedBytes: received });
      } else chunks.push(chunk);
    });
    response.once('end', () => resolve({ text: new TextDecoder().decode(Buffer.concat(chunks, received)) }));
    // 'close' follows 'end' and every error: by then the answer is settled unless the body was cut
    // short (the error is built only then: an Error's stack trace costs on every call).
    response.once('close', () => {
      if (!response.complete) reject(ended());
    });
  });
}

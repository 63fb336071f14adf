import { type LlmHttpRequest, type LlmHttpResponse, type LlmTransport, createFetchTransport } from '@mana-ai/planner';
import { Agent, type Dispatcher } from 'undici';

/** The runner's LLM transport, with the keep-alive connections it holds. */
export interface HttpTransport {
  readonly transport: LlmTransport;
  /** Closes the pooled connections (at shutdown). */
  close(): void;
}

type BodyRead = Awaited<ReturnType<LlmHttpResponse['readBody']>>;
type Headers = Record<string, string | string[] | undefined>;

/** What an answer may deliver before its body is asked for; past it, reading pauses until then. */
const UNREAD_BYTES = 64 * 1024;

/**
 * Creates the planner's {@link LlmTransport} of the runner: requests to a plain-`http:` LLM go
 * through undici's low-level dispatcher (an `Agent` with a keep-alive connection pool per origin),
 * others (`https:`) through `fetch`. The LLM calls are the runner's hottest outbound path, and a
 * dispatch handler costs less CPU per call than `node:http`'s `ClientRequest`/`IncomingMessage`
 * streams (and far less than `fetch`'s web streams). The response-size bound is kept (a body is
 * dropped with its connection where it crosses the cap), the request's signal ends the call before
 * or after the headers, a call whose kept-alive connection the server closed before answering is
 * sent once more, and a redirect is re-sent through `fetch`, which follows it.
 */
export function createHttpTransport(): HttpTransport {
  const agent = new Agent();
  const viaFetch = createFetchTransport();
  const targets = new Map<string, Pick<Dispatcher.DispatchOptions, 'origin' | 'path'>>();

  function transport(call: LlmHttpRequest): Promise<LlmHttpResponse> {
    if (!call.url.startsWith('http:')) return viaFetch(call);
    call.signal.throwIfAborted();
    let target = targets.get(call.url);
    if (target === undefined) {
      const url = new URL(call.url);
      target = { origin: url.origin, path: `${url.pathname}${url.search}` };
      targets.set(call.url, target);
    }
    const options = { ...target, method: 'POST', headers: call.headers, body: call.body } as Dispatcher.DispatchOptions;
    return new Promise((resolve, reject) => new Call(agent, options, call, viaFetch, resolve, reject).send());
  }

  return {
    transport,
    close: () => {
      // Calls still running fail with undici's "destroyed" error; the promise itself never rejects.
      void agent.destroy().catch(() => {});
    },
  };
}

/** One call through the dispatcher: its handler, the answer's head, and the body read on request. */
class Call implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  /** Whether this is the second sending of a call refused on a stale connection. */
  private resent = false;
  private head: { headers: Headers; redirected: boolean } | undefined;
  private readonly chunks: Buffer[] = [];
  private received = 0;
  private ended = false;
  private failure: unknown;
  private cap: number | undefined;
  private reading: { resolve: (read: BodyRead) => void; reject: (error: unknown) => void } | undefined;
  private readonly onAbort = (): void => {
    const reason: unknown = this.call.signal.reason;
    this.controller?.abort(reason as Error);
    // A call still queued for a connection is settled now; undici drops it once it would start.
    if (this.head === undefined) this.reject(reason);
  };

  constructor(
    private readonly agent: Agent,
    private readonly options: Dispatcher.DispatchOptions,
    private readonly call: LlmHttpRequest,
    private readonly viaFetch: LlmTransport,
    private readonly resolve: (response: LlmHttpResponse) => void,
    private readonly reject: (error: unknown) => void,
  ) {}

  send(): void {
    this.call.signal.addEventListener('abort', this.onAbort, { once: true });
    this.agent.dispatch(this.options, this);
  }

  private release(): void {
    this.call.signal.removeEventListener('abort', this.onAbort);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.call.signal.aborted) controller.abort(this.call.signal.reason as Error);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, status: number, headers: Headers): void {
    // An informational answer (1xx) precedes the real one.
    if (status < 200) return;
    const redirected = status >= 300 && status < 400 && headers.location !== undefined;
    this.head = { headers, redirected };
    if (redirected) {
      this.release();
      this.viaFetch(this.call).then(this.resolve, this.reject);
      return;
    }
    this.resolve({
      status,
      header: (name) => {
        const value = headers[name];
        return Array.isArray(value) ? value.join(', ') : value;
      },
      readBody: (maxBytes) => this.readBody(maxBytes),
    });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.head?.redirected) return;
    this.received += chunk.byteLength;
    if (this.cap !== undefined && this.received > this.cap) this.tooLarge(this.received);
    else {
      this.chunks.push(chunk);
      if (this.cap === undefined && this.received > UNREAD_BYTES) controller.pause();
    }
  }

  onResponseEnd(): void {
    if (this.head?.redirected) return;
    this.release();
    // undici puts a connection back in its pool one event-loop turn after the answer ended; the
    // answer is handed over after that, so a call that follows at once reuses the connection.
    queueMicrotask(() =>
      setImmediate(() => {
        this.ended = true;
        this.finish();
      }),
    );
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.release();
    const signal = this.call.signal;
    if (this.head === undefined) {
      // A kept-alive connection the server closed as this call went out: nothing was answered on
      // it, so the call is sent once more on another connection instead of failing as unreachable
      // and waiting for the adapter's retry.
      if (!signal.aborted && !this.resent && isStaleConnection(error)) {
        this.resent = true;
        this.controller = undefined;
        this.send();
      } else this.reject(signal.aborted ? signal.reason : error);
      return;
    }
    this.failure ??= signal.aborted ? signal.reason : error;
    this.reading?.reject(this.failure);
  }

  /** See {@link LlmHttpResponse.readBody}: UTF-8 as `fetch` decodes it, the connection dropped past `maxBytes`. */
  private readBody(maxBytes: number): Promise<BodyRead> {
    return new Promise<BodyRead>((resolve, reject) => {
      this.reading = { resolve, reject };
      this.cap = maxBytes;
      if (this.failure !== undefined) reject(this.failure);
      else if (Number(this.head?.headers['content-length'] ?? Number.NaN) > maxBytes) this.tooLarge(maxBytes);
      else if (this.received > maxBytes) this.tooLarge(this.received);
      else if (this.ended) this.finish();
      else this.controller?.resume();
    });
  }

  /** Drops the connection where the body crossed the cap. */
  private tooLarge(receivedBytes: number): void {
    const reading = this.reading;
    this.reading = undefined;
    this.chunks.length = 0;
    this.release();
    this.controller?.abort(new RangeError('the answer exceeds the response-size bound'));
    reading?.resolve({ text: undefined, receivedBytes });
  }

  private finish(): void {
    const reading = this.reading;
    if (reading === undefined || this.failure !== undefined) return;
    this.reading = undefined;
    reading.resolve({ text: new TextDecoder().decode(Buffer.concat(this.chunks, this.received)) });
  }
}

/**
 * Whether an error before any answer is a kept-alive connection the server had closed: a reset or
 * broken pipe, or undici's socket error on a connection that had already carried an answer.
 */
function isStaleConnection(error: unknown): boolean {
  const { code, socket } = error as { code?: unknown; socket?: { bytesRead?: number } };
  if (code === 'ECONNRESET' || code === 'EPIPE') return true;
  return code === 'UND_ERR_SOCKET' && (socket?.bytesRead ?? 0) > 0;
}

import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A tool call a scripted reply makes; `arguments` as a string is sent verbatim (e.g. broken JSON). */
export interface FakeToolCall {
  id?: string;
  name: string;
  arguments?: Record<string, unknown> | string;
}

/** OpenAI-style usage numbers of a reply. */
export interface FakeUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens?: number;
}

/** What the fake answers to one request. */
export type FakeReply =
  | {
      kind: 'completion';
      content?: string | null;
      toolCalls?: FakeToolCall[];
      /** Default `tool_calls` when there are tool calls, else `stop`. */
      finishReason?: string;
      /** Default: estimated from the request and reply sizes; `null` sends no usage. */
      usage?: FakeUsage | null;
      delayMs?: number;
    }
  | { kind: 'http-error'; status: number; body?: unknown; headers?: Record<string, string>; delayMs?: number }
  | { kind: 'hang' }
  | { kind: 'slow-body'; delayMs: number; reply: FakeReply }
  | { kind: 'raw'; status?: number; body: string; contentType?: string; delayMs?: number }
  | { kind: 'large'; bytes: number; chunkBytes: number; intervalMs: number; declareLength: boolean };

/** Options of {@link fakeReplies.large}. */
export interface FakeLargeReplyOptions {
  /** Bytes per write (default 65,536). */
  chunkBytes?: number;
  /** Pause between writes in ms, to trickle the body (default 0: as fast as the client reads). */
  intervalMs?: number;
  /** Send `content-length` up front instead of a chunked body (default false). */
  declareLength?: boolean;
}

/** Builders of {@link FakeReply} values. */
export const fakeReplies = {
  /** A final text answer (`finish_reason: stop`). */
  text(content: string | null, extra: { usage?: FakeUsage | null; finishReason?: string; delayMs?: number } = {}): FakeReply {
    return { kind: 'completion', content, ...extra };
  },
  /** An answer with tool calls (`finish_reason: tool_calls`); names and arguments are not checked. */
  toolCalls(calls: FakeToolCall[], extra: { content?: string | null; usage?: FakeUsage | null; delayMs?: number } = {}): FakeReply {
    return { kind: 'completion', toolCalls: calls, content: null, ...extra };
  },
  /** An HTTP error; `body` defaults to `{ error: { message } }`. */
  error(status: number, options: { body?: unknown; headers?: Record<string, string>; delayMs?: number } = {}): FakeReply {
    return { kind: 'http-error', status, ...options };
  },
  /** HTTP 429, with `retry-after` when given. */
  rateLimited(retryAfterSeconds?: number): FakeReply {
    return {
      kind: 'http-error',
      status: 429,
      ...(retryAfterSeconds === undefined ? {} : { headers: { 'retry-after': String(retryAfterSeconds) } }),
    };
  },
  /** Never answers (the connection stays open until the client gives up or the server closes). */
  hang(): FakeReply {
    return { kind: 'hang' };
  },
  /** HTTP 200 with a JSON content type and a body that is not JSON. */
  malformedJson(): FakeReply {
    return { kind: 'raw', status: 200, body: '{"choices": [ { "message": ', contentType: 'application/json' };
  },
  /** Any status and body, verbatim. */
  raw(body: string, options: { status?: number; contentType?: string } = {}): FakeReply {
    return { kind: 'raw', body, ...options };
  },
  /** `reply` after `ms` milliseconds (before the headers). */
  delayed(ms: number, reply: FakeReply): FakeReply {
    return reply.kind === 'hang' || reply.kind === 'slow-body' || reply.kind === 'large' ? reply : { ...reply, delayMs: ms };
  },
  /**
   * A text answer whose body is exactly `bytes` long (its content padded with `x`), written chunk by
   * chunk as the client reads it (backpressure), so a client that stops reading never gets it all.
   */
  large(bytes: number, options: FakeLargeReplyOptions = {}): FakeReply {
    return {
      kind: 'large',
      bytes,
      chunkBytes: Math.max(1, options.chunkBytes ?? 65_536),
      intervalMs: options.intervalMs ?? 0,
      declareLength: options.declareLength ?? false,
    };
  },
  /** Headers now, the body of `reply` only after `ms` milliseconds. */
  slowBody(ms: number, reply: FakeReply): FakeReply {
    return { kind: 'slow-body', delayMs: ms, reply };
  },
};

/** One request the fake received. */
export interface FakeLlmRequest {
  method: string;
  path: string;
  /** Lower-case header names. */
  headers: Record<string, string | string[] | undefined>;
  /** The parsed JSON body (`undefined` when it was not JSON). */
  body: FakeChatBody | undefined;
  rawBody: string;
  /** Index of the rule that answered, `null` when none matched. */
  rule: number | null;
  /** Body bytes of a `large` reply written so far (kept up to date while it streams; 0 for other replies). */
  bytesSent: number;
  /** True once the client closed the connection before the whole response was written. */
  closedEarly: boolean;
}

/** The parts of a chat-completions body the matchers read. */
export interface FakeChatBody {
  model?: string;
  messages?: { role: string; content?: string | null; tool_call_id?: string; tool_calls?: unknown[] }[];
  tools?: { type: string; function: { name: string; description?: string; parameters?: unknown } }[];
  [key: string]: unknown;
}

/** Conditions a request must meet for a rule to answer it; all given conditions must hold. */
export interface FakeLlmMatcher {
  /** The requested model. */
  model?: string | RegExp;
  /** The content of the last `user` message (a string matches as a substring). */
  lastUserMessage?: string | RegExp;
  /** Whether the request contains any `tool` message (i.e. it is a follow-up round). */
  hasToolResult?: boolean;
  /** A tool with this name is offered. */
  toolOffered?: string;
  /** Whether the request offers any tools (compaction calls offer none). */
  hasTools?: boolean;
  /** Any other condition. */
  test?: (request: FakeLlmRequest) => boolean;
}

/** A scripted answer: the first rule that matches and has uses left answers. */
export interface FakeLlmRule {
  when?: FakeLlmMatcher;
  reply: FakeReply | ((request: FakeLlmRequest) => FakeReply);
  /** How often the rule may answer (default: unlimited). */
  times?: number;
}

/** Options of {@link createFakeLlmServer}. */
export interface FakeLlmServerOptions {
  /** Delay before every answer, in ms (default 0). */
  latencyMs?: number;
  /** Answer when no rule matches (default: HTTP 500 `fake-llm: no scripted reply matched`). */
  defaultReply?: FakeReply;
  /** When set, requests without this key get HTTP 401. */
  auth?: { style: 'bearer' | 'x-api-key'; key: string };
}

/** A running fake LLM server. */
export interface FakeLlmServer {
  /** Root URL, e.g. `http://127.0.0.1:41234` (the adapter adds `/v1`). */
  readonly url: string;
  /** Every request received, in order. */
  readonly requests: readonly FakeLlmRequest[];
  /** Adds rules (checked in the order added). */
  script(...rules: FakeLlmRule[]): FakeLlmServer;
  /** Adds replies answered once each, in order, to any request. */
  enqueue(...replies: FakeReply[]): FakeLlmServer;
  /** Drops all rules and recorded requests. */
  reset(): void;
  /** Resolves once `count` requests have arrived (rejects after `timeoutMs`, default 5000). */
  waitForRequests(count: number, timeoutMs?: number): Promise<readonly FakeLlmRequest[]>;
  /** Stops the server, cutting hanging connections. */
  close(): Promise<void>;
}

const CHAT_PATHS = new Set(['/v1/chat/completions', '/chat/completions']);

function lastUserMessage(body: FakeChatBody | undefined): string {
  const users = (body?.messages ?? []).filter((message) => message.role === 'user');
  return users.at(-1)?.content ?? '';
}

function matches(matcher: FakeLlmMatcher | undefined, request: FakeLlmRequest): boolean {
  if (!matcher) return true;
  const body = request.body;
  const test = (pattern: string | RegExp, value: string): boolean =>
    typeof pattern === 'string' ? value.includes(pattern) : pattern.test(value);
  if (matcher.model !== undefined && !(typeof matcher.model === 'string' ? body?.model === matcher.model : matcher.model.test(body?.model ?? ''))) {
    return false;
  }
  if (matcher.lastUserMessage !== undefined && !test(matcher.lastUserMessage, lastUserMessage(body))) return false;
  if (matcher.hasToolResult !== undefined && (body?.messages ?? []).some((message) => message.role === 'tool') !== matcher.hasToolResult) {
    return false;
  }
  if (matcher.toolOffered !== undefined && !(body?.tools ?? []).some((tool) => tool.function?.name === matcher.toolOffered)) return false;
  if (matcher.hasTools !== undefined && (body?.tools ?? []).length > 0 !== matcher.hasTools) return false;
  return matcher.test ? matcher.test(request) : true;
}

function estimate(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

function completionBody(reply: Extract<FakeReply, { kind: 'completion' }>, request: FakeLlmRequest, sequence: number): string {
  const toolCalls = (reply.toolCalls ?? []).map((call, index) => ({
    id: call.id ?? `call_${sequence}_${index}`,
    type: 'function',
    function: { name: call.name, arguments: typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments ?? {}) },
  }));
  const message = { role: 'assistant', content: reply.content ?? null, ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}) };
  const promptTokens = estimate(request.rawBody);
  const completionTokens = estimate(JSON.stringify(message));
  const usage =
    reply.usage === null
      ? undefined
      : reply.usage
        ? { ...reply.usage, total_tokens: reply.usage.total_tokens ?? reply.usage.prompt_tokens + reply.usage.completion_tokens }
        : { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
  return JSON.stringify({
    id: `chatcmpl-fake-${sequence}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: request.body?.model ?? 'fake',
    choices: [{ index: 0, message, finish_reason: reply.finishReason ?? (toolCalls.length > 0 ? 'tool_calls' : 'stop') }],
    ...(usage ? { usage } : {}),
  });
}

/**
 * Starts an OpenAI-compatible fake LLM on 127.0.0.1 (random port) answering
 * `POST /v1/chat/completions` (and `/chat/completions`) from scripted rules.
 */
export async function createFakeLlmServer(options: FakeLlmServerOptions = {}): Promise<FakeLlmServer> {
  let rules: { rule: FakeLlmRule; used: number }[] = [];
  const requests: FakeLlmRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const waiters = new Set<() => void>();
  let sequence = 0;

  const wait = (ms: number): Promise<void> =>
    ms <= 0
      ? Promise.resolve()
      : new Promise((resolve) => {
          const timer = setTimeout(() => {
            timers.delete(timer);
            resolve();
          }, ms);
          timers.add(timer);
        });

  const send = async (response: ServerResponse, reply: FakeReply, request: FakeLlmRequest): Promise<void> => {
    if (reply.kind === 'hang') return;
    if (reply.kind === 'large') {
      await sendLarge(response, reply, request);
      return;
    }
    if (reply.kind === 'slow-body') {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.flushHeaders();
      await wait(reply.delayMs);
      const inner = reply.reply;
      response.end(inner.kind === 'completion' ? completionBody(inner, request, sequence) : inner.kind === 'raw' ? inner.body : '');
      return;
    }
    await wait(reply.delayMs ?? 0);
    if (response.destroyed) return;
    if (reply.kind === 'completion') {
      response.writeHead(200, { 'content-type': 'application/json' }).end(completionBody(reply, request, sequence));
    } else if (reply.kind === 'http-error') {
      const body = reply.body ?? { error: { message: `fake-llm error ${reply.status}`, type: 'fake_error' } };
      response
        .writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers })
        .end(typeof body === 'string' ? body : JSON.stringify(body));
    } else {
      response.writeHead(reply.status ?? 200, { 'content-type': reply.contentType ?? 'application/json' }).end(reply.body);
    }
  };

  const sendLarge = async (response: ServerResponse, reply: Extract<FakeReply, { kind: 'large' }>, request: FakeLlmRequest): Promise<void> => {
    const [head, tail] = completionBody({ kind: 'completion', content: '\u0000', usage: null }, request, sequence).split('\\u0000');
    const padding = Math.max(0, reply.bytes - Buffer.byteLength(head!) - Buffer.byteLength(tail!));
    response.writeHead(200, {
      'content-type': 'application/json',
      ...(reply.declareLength ? { 'content-length': String(Buffer.byteLength(head!) + padding + Buffer.byteLength(tail!)) } : {}),
    });
    const write = async (chunk: string): Promise<boolean> => {
      if (response.destroyed) return false;
      const drained = response.write(chunk);
      request.bytesSent += Buffer.byteLength(chunk);
      if (!drained) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            response.off('drain', done).off('close', done);
            resolve();
          };
          response.on('drain', done).on('close', done);
        });
      }
      if (reply.intervalMs > 0) await wait(reply.intervalMs);
      return !response.destroyed;
    };
    if (!(await write(head!))) return;
    const block = 'x'.repeat(reply.chunkBytes);
    for (let left = padding; left > 0; left -= reply.chunkBytes) {
      if (!(await write(left >= reply.chunkBytes ? block : block.slice(0, left)))) return;
    }
    if (response.destroyed) return;
    request.bytesSent += Buffer.byteLength(tail!);
    response.end(tail);
  };

  const handle = async (incoming: IncomingMessage, response: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of incoming) chunks.push(chunk as Buffer);
    const rawBody = Buffer.concat(chunks).toString('utf8');
    const path = new URL(incoming.url ?? '/', 'http://fake').pathname;
    let body: FakeChatBody | undefined;
    try {
      body = JSON.parse(rawBody) as FakeChatBody;
    } catch {
      body = undefined;
    }
    const request: FakeLlmRequest = {
      method: incoming.method ?? 'GET',
      path,
      headers: { ...incoming.headers },
      body,
      rawBody,
      rule: null,
      bytesSent: 0,
      closedEarly: false,
    };
    response.on('close', () => {
      if (!response.writableFinished) request.closedEarly = true;
    });
    requests.push(request);
    sequence++;
    for (const waiter of waiters) waiter();

    if (incoming.method !== 'POST' || !CHAT_PATHS.has(path)) {
      response.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'not found' } }));
      return;
    }
    if (options.auth) {
      const given = options.auth.style === 'bearer' ? incoming.headers.authorization : incoming.headers['x-api-key'];
      const expected = options.auth.style === 'bearer' ? `Bearer ${options.auth.key}` : options.auth.key;
      if (given !== expected) {
        await send(response, fakeReplies.error(401, { body: { error: { message: 'invalid api key' } } }), request);
        return;
      }
    }
    await wait(options.latencyMs ?? 0);
    const index = rules.findIndex(({ rule, used }) => used < (rule.times ?? Number.POSITIVE_INFINITY) && matches(rule.when, request));
    let reply: FakeReply;
    if (index >= 0) {
      const entry = rules[index]!;
      entry.used++;
      request.rule = index;
      reply = typeof entry.rule.reply === 'function' ? entry.rule.reply(request) : entry.rule.reply;
    } else {
      reply = options.defaultReply ?? fakeReplies.error(500, { body: { error: { message: 'fake-llm: no scripted reply matched' } } });
    }
    await send(response, reply, request);
  };

  const server = createServer((incoming, response) => {
    handle(incoming, response).catch(() => {
      if (!response.headersSent) response.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  const fake: FakeLlmServer = {
    url: `http://127.0.0.1:${port}`,
    requests,
    script(...added) {
      rules.push(...added.map((rule) => ({ rule, used: 0 })));
      return fake;
    },
    enqueue(...replies) {
      return fake.script(...replies.map((reply) => ({ reply, times: 1 })));
    },
    reset() {
      rules = [];
      requests.length = 0;
    },
    waitForRequests(count, timeoutMs = 5000) {
      if (requests.length >= count) return Promise.resolve(requests);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`fake-llm: expected ${count} requests, got ${requests.length}`));
        }, timeoutMs);
        const check = (): void => {
          if (requests.length < count) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(requests);
        };
        waiters.add(check);
      });
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return fake;
}

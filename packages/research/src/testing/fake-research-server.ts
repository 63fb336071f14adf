import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DeepResearchAnswer, DeepResearchStatus } from '../deep-research.js';
import type { ResearchArticle } from '../shallow-research.js';

/** One request the fake server received. */
export interface RecordedRequest {
  route: FakeRoute | 'unknown';
  method: string;
  path: string;
  /** Lower-cased header names. */
  headers: Record<string, string | undefined>;
  /** Parsed JSON body (undefined when there was none or it was not JSON). */
  body: unknown;
}

/** The four endpoints the fake plays. */
export type FakeRoute = 'discover' | 'search' | 'submit' | 'poll';

/** A scripted answer: a status and a JSON or raw body, optionally late or never finished. */
export interface FakeReply {
  /** Default 200. */
  status?: number;
  /** Sent as JSON. */
  json?: unknown;
  /** Sent verbatim (for malformed bodies); wins over `json`. */
  raw?: string;
  /** Waits this long before sending the status line. */
  delayMs?: number;
  /** Sends the status and headers, then never finishes the body. */
  stallBody?: boolean;
}

/** A route override: a fixed reply, or a function returning one (undefined = default behaviour). */
export type FakeHandler = FakeReply | ((request: RecordedRequest) => FakeReply | undefined);

/** A deep-research task held by the fake. */
export interface FakeTask {
  userId: string;
  query: string;
  providerId: string;
  status: DeepResearchStatus;
  answer?: DeepResearchAnswer;
  /** A raw `result` to return instead of `{ answer }` (for malformed results). */
  result?: unknown;
}

/** Options of {@link startFakeResearchServer}. */
export interface FakeResearchServerOptions {
  /**
   * What mana-api's news-research routes demand. Unset: nothing (the original's wrong
   * assumption); `serviceKey`: `X-Service-Key` and `X-User-Id`; `bearerToken`: that bearer token.
   */
  newsAuth?: { serviceKey?: string; bearerToken?: string };
  /** The `X-Service-Key` mana-research expects; default `test-service-key`. */
  serviceKey?: string;
}

/** A local HTTP server playing mana-api's news-research and mana-research's async endpoints. */
export interface FakeResearchServer {
  /** `http://127.0.0.1:<port>`: the base URL of both services. */
  readonly url: string;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[];
  /** Feeds `/discover` returns by default. */
  feeds: { url: string; title: string; description?: string }[];
  /** Articles `/search` returns by default. */
  articles: ResearchArticle[];
  /** Tasks by id. */
  readonly tasks: Map<string, FakeTask>;
  /** Overrides a route until cleared with `undefined`. */
  reply(route: FakeRoute, handler: FakeHandler | undefined): void;
  /** Requests of one route. */
  requestsTo(route: FakeRoute): RecordedRequest[];
  /** Stops the server and drops open connections. */
  close(): Promise<void>;
}

const PROVIDERS = new Set(['openai-deep-research', 'gemini-deep-research', 'gemini-deep-research-max']);

/** Starts a {@link FakeResearchServer} on 127.0.0.1 and a free port. */
export async function startFakeResearchServer(options: FakeResearchServerOptions = {}): Promise<FakeResearchServer> {
  const serviceKey = options.serviceKey ?? 'test-service-key';
  const requests: RecordedRequest[] = [];
  const overrides = new Map<FakeRoute, FakeHandler>();
  const tasks = new Map<string, FakeTask>();
  const timers = new Set<NodeJS.Timeout>();
  let taskCounter = 0;

  const state = {
    feeds: [
      { url: 'https://feeds.example/a.xml', title: 'Feed A' },
      { url: 'https://feeds.example/b.xml', title: 'Feed B' },
    ] as FakeResearchServer['feeds'],
    articles: [
      {
        url: 'https://news.example/1',
        title: 'Erster Artikel',
        excerpt: 'Kurzfassung eins',
        publishedAt: '2026-04-20T08:00:00.000Z',
        feedUrl: 'https://feeds.example/a.xml',
        score: 5,
      },
      {
        url: 'https://news.example/2',
        title: 'Zweiter Artikel',
        excerpt: null,
        publishedAt: null,
        feedUrl: 'https://feeds.example/b.xml',
        score: 3,
      },
    ] as ResearchArticle[],
  };

  const newsAuthorized = (request: RecordedRequest): boolean => {
    const auth = options.newsAuth;
    if (!auth) return true;
    if (auth.serviceKey !== undefined) {
      return request.headers['x-service-key'] === auth.serviceKey && Boolean(request.headers['x-user-id']);
    }
    if (auth.bearerToken !== undefined) return request.headers.authorization === `Bearer ${auth.bearerToken}`;
    return true;
  };

  const researchAuthorized = (request: RecordedRequest): boolean =>
    request.headers['x-service-key'] === serviceKey && Boolean(request.headers['x-user-id']);

  function defaultReply(request: RecordedRequest): FakeReply {
    const body = (request.body ?? {}) as Record<string, unknown>;
    switch (request.route) {
      case 'discover':
        if (!newsAuthorized(request)) return { status: 401, json: { error: 'unauthorized' } };
        if (typeof body.query !== 'string' || body.query.length === 0) return { status: 400, json: { error: 'query' } };
        return { json: { feeds: state.feeds, searched: 3 } };
      case 'search':
        if (!newsAuthorized(request)) return { status: 401, json: { error: 'unauthorized' } };
        if (!Array.isArray(body.feeds) || body.feeds.length === 0 || typeof body.query !== 'string') {
          return { status: 400, json: { error: 'feeds and query required' } };
        }
        return { json: { articles: state.articles, feedCount: body.feeds.length } };
      case 'submit': {
        if (!researchAuthorized(request)) return { status: 401, json: { error: 'unauthorized' } };
        const query = body.query;
        if (typeof query !== 'string' || query.length === 0 || query.length > 4000) {
          return { status: 400, json: { error: 'query' } };
        }
        if (typeof body.provider !== 'string' || !PROVIDERS.has(body.provider)) {
          return { status: 400, json: { error: 'provider' } };
        }
        taskCounter += 1;
        const taskId = `task-${taskCounter}`;
        tasks.set(taskId, {
          userId: request.headers['x-user-id'] ?? '',
          query,
          providerId: body.provider,
          status: 'queued',
        });
        return { status: 202, json: { taskId, status: 'queued', providerId: body.provider, costCredits: 1500 } };
      }
      case 'poll': {
        if (!researchAuthorized(request)) return { status: 401, json: { error: 'unauthorized' } };
        const taskId = decodeURIComponent(request.path.slice(request.path.lastIndexOf('/') + 1));
        const task = tasks.get(taskId);
        if (!task || task.userId !== request.headers['x-user-id']) return { status: 404, json: { error: 'not found' } };
        const result = task.result !== undefined ? task.result : task.answer ? { answer: task.answer } : undefined;
        return {
          json: {
            taskId,
            status: task.status,
            providerId: task.providerId,
            query: task.query,
            costCredits: 1500,
            ...(result === undefined ? {} : { result }),
          },
        };
      }
      default:
        return { status: 404, json: { error: 'no such route' } };
    }
  }

  const server: Server = createServer((incoming: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
    incoming.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = text.length > 0 ? JSON.parse(text) : undefined;
      } catch {
        body = undefined;
      }
      const path = (incoming.url ?? '/').split('?')[0] ?? '/';
      const headers: Record<string, string | undefined> = {};
      for (const [name, value] of Object.entries(incoming.headers)) {
        headers[name] = Array.isArray(value) ? value.join(', ') : value;
      }
      const request: RecordedRequest = { route: routeOf(incoming.method ?? 'GET', path), method: incoming.method ?? 'GET', path, headers, body };
      requests.push(request);
      const override = request.route === 'unknown' ? undefined : overrides.get(request.route);
      const scripted = typeof override === 'function' ? override(request) : override;
      send(response, scripted ?? defaultReply(request));
    });
  });

  function send(response: ServerResponse, reply: FakeReply): void {
    const write = (): void => {
      const payload = reply.raw ?? (reply.json === undefined ? '' : JSON.stringify(reply.json));
      response.writeHead(reply.status ?? 200, { 'Content-Type': 'application/json' });
      if (reply.stallBody) {
        response.write(payload.slice(0, 1));
        return;
      }
      response.end(payload);
    };
    if (reply.delayMs === undefined) {
      write();
      return;
    }
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!response.destroyed) write();
    }, reply.delayMs);
    timers.add(timer);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get feeds() {
      return state.feeds;
    },
    set feeds(value) {
      state.feeds = value;
    },
    get articles() {
      return state.articles;
    },
    set articles(value) {
      state.articles = value;
    },
    tasks,
    reply(route, handler) {
      if (handler === undefined) overrides.delete(route);
      else overrides.set(route, handler);
    },
    requestsTo(route) {
      return requests.filter((request) => request.route === route);
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}

function routeOf(method: string, path: string): FakeRoute | 'unknown' {
  if (method === 'POST' && path === '/api/v1/news-research/discover') return 'discover';
  if (method === 'POST' && path === '/api/v1/news-research/search') return 'search';
  if (method === 'POST' && path === '/api/v1/internal/research/async') return 'submit';
  if (method === 'GET' && path.startsWith('/api/v1/internal/research/async/')) return 'poll';
  return 'unknown';
}

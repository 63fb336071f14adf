import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  RESEARCH_FOOTER,
  createShallowResearchClient,
  formatShallowResearch,
  toShallowResearchInput,
} from './shallow-research.js';
import { type FakeResearchServer, startFakeResearchServer } from './testing/index.js';

const SERVICE_KEY = 'news-service-key';

let open: FakeResearchServer;
let keyed: FakeResearchServer;
let bearer: FakeResearchServer;

beforeAll(async () => {
  open = await startFakeResearchServer();
  keyed = await startFakeResearchServer({ newsAuth: { serviceKey: SERVICE_KEY } });
  bearer = await startFakeResearchServer({ newsAuth: { bearerToken: 'jwt-for-u-1' } });
});
afterAll(async () => {
  await Promise.all([open.close(), keyed.close(), bearer.close()]);
});
afterEach(() => {
  for (const server of [open, keyed, bearer]) {
    server.requests.length = 0;
    for (const route of ['discover', 'search'] as const) server.reply(route, undefined);
  }
});

const EXPECTED_CONTEXT = [
  '# Web-Research: "aktuelle News zu Solar"',
  '',
  '2 Quellen durchsucht, 2 relevante Artikel gefunden:',
  '',
  '## Erster Artikel',
  '> Kurzfassung eins',
  'URL: https://news.example/1',
  'Datum: 2026-04-20T08:00:00.000Z',
  '',
  '## Zweiter Artikel',
  'URL: https://news.example/2',
  '',
  '---',
  RESEARCH_FOOTER,
].join('\n');

describe('createShallowResearchClient', () => {
  it('discovers then searches and formats the context when feeds and articles are found', async () => {
    const client = createShallowResearchClient({}, { baseUrl: `${open.url}/`, auth: { type: 'none' } });
    const outcome = await client.research('aktuelle News zu Solar', { userId: 'u-1' });
    expect(outcome).toMatchObject({ status: 'found', feedCount: 2, contextMarkdown: EXPECTED_CONTEXT });
    const [discover, search] = open.requests;
    expect(discover).toMatchObject({
      route: 'discover',
      body: { query: 'aktuelle News zu Solar', language: 'de', limit: 5 },
    });
    expect(discover?.headers['content-type']).toBe('application/json');
    expect(search).toMatchObject({
      route: 'search',
      body: {
        feeds: ['https://feeds.example/a.xml', 'https://feeds.example/b.xml'],
        query: 'aktuelle News zu Solar',
        limit: 8,
      },
    });
  });

  it('sends the configured language and limits when given', async () => {
    const client = createShallowResearchClient(
      {},
      { baseUrl: open.url, auth: { type: 'none' }, language: 'en', discoverLimit: 3, searchLimit: 4 },
    );
    await client.research('news', { userId: 'u-1' });
    await client.research('news', { userId: 'u-1', language: 'fr', limit: 2 });
    expect(open.requestsTo('discover').map((request) => request.body)).toEqual([
      { query: 'news', language: 'en', limit: 3 },
      { query: 'news', language: 'fr', limit: 3 },
    ]);
    expect(open.requestsTo('search').map((request) => (request.body as { limit: number }).limit)).toEqual([4, 2]);
  });

  it('is rejected with a typed 401 error when it sends no credentials to a protected service', async () => {
    const client = createShallowResearchClient({}, { baseUrl: keyed.url, auth: { type: 'none' } });
    const outcome = await client.research('news', { userId: 'u-1' });
    expect(outcome.status).toBe('error');
    if (outcome.status !== 'error') return;
    expect(outcome.error).toMatchObject({
      code: 'RESEARCH_HTTP_STATUS',
      kind: 'http-status',
      operation: 'discover',
      status: 401,
      retryable: false,
    });
    expect(keyed.requestsTo('search')).toHaveLength(0);
  });

  it('sends the service key and user id headers when auth is service-key', async () => {
    const client = createShallowResearchClient(
      {},
      { baseUrl: keyed.url, auth: { type: 'service-key', serviceKey: SERVICE_KEY } },
    );
    const outcome = await client.research('news', { userId: 'u-42' });
    expect(outcome.status).toBe('found');
    for (const request of keyed.requests) {
      expect(request.headers['x-service-key']).toBe(SERVICE_KEY);
      expect(request.headers['x-user-id']).toBe('u-42');
    }
  });

  it('uses custom header names when the service-key auth names them', async () => {
    const client = createShallowResearchClient(
      {},
      {
        baseUrl: open.url,
        auth: { type: 'service-key', serviceKey: 'k', serviceKeyHeader: 'X-Api-Key', userIdHeader: 'X-On-Behalf-Of' },
      },
    );
    await client.research('news', { userId: 'u-7' });
    expect(open.requests[0]?.headers['x-api-key']).toBe('k');
    expect(open.requests[0]?.headers['x-on-behalf-of']).toBe('u-7');
    expect(open.requests[0]?.headers['x-service-key']).toBeUndefined();
  });

  it('asks the token provider per user and sends a bearer token when auth is bearer', async () => {
    const asked: string[] = [];
    const client = createShallowResearchClient(
      {},
      {
        baseUrl: bearer.url,
        auth: {
          type: 'bearer',
          token: async ({ userId }) => {
            asked.push(userId);
            return `jwt-for-${userId}`;
          },
        },
      },
    );
    expect((await client.research('news', { userId: 'u-1' })).status).toBe('found');
    expect(asked).toEqual(['u-1']);
    expect(bearer.requests.map((request) => request.headers.authorization)).toEqual([
      'Bearer jwt-for-u-1',
      'Bearer jwt-for-u-1',
    ]);
    const otherUser = await client.research('news', { userId: 'u-2' });
    expect(otherUser).toMatchObject({ status: 'error', error: { status: 401 } });
  });

  it('reports an empty discover without searching when no feeds are found', async () => {
    open.reply('discover', { json: { feeds: [] } });
    const client = createShallowResearchClient({}, { baseUrl: open.url, auth: { type: 'none' } });
    expect(await client.research('news', { userId: 'u-1' })).toEqual({ status: 'empty', stage: 'discover' });
    expect(open.requestsTo('search')).toHaveLength(0);
  });

  it('reports an empty search when no articles are found', async () => {
    open.reply('search', { json: { articles: [], feedCount: 2 } });
    const client = createShallowResearchClient({}, { baseUrl: open.url, auth: { type: 'none' } });
    expect(await client.research('news', { userId: 'u-1' })).toEqual({ status: 'empty', stage: 'search' });
  });

  it('maps a 502 from discover to a retryable http-status error', async () => {
    open.reply('discover', { status: 502, json: { error: 'web-search-unavailable', message: 'down' } });
    const client = createShallowResearchClient({}, { baseUrl: open.url, auth: { type: 'none' } });
    const outcome = await client.research('news', { userId: 'u-1' });
    expect(outcome).toMatchObject({
      status: 'error',
      error: { code: 'RESEARCH_HTTP_STATUS', status: 502, retryable: true, operation: 'discover' },
    });
  });

  it('maps a 400 from search to a search http-status error', async () => {
    open.reply('search', { status: 400, json: { error: 'feeds and query required' } });
    const client = createShallowResearchClient({}, { baseUrl: open.url, auth: { type: 'none' } });
    const outcome = await client.research('news', { userId: 'u-1' });
    expect(outcome).toMatchObject({ status: 'error', error: { operation: 'search', status: 400 } });
  });

  it('times out discover after the configured timeout when the service answers late', async () => {
    open.reply('discover', { delayMs: 2_000, json: { feeds: [] } });
    const client = createShallowResearchClient({}, { baseUrl: open.url, auth: { type: 'none' }, discoverTimeoutMs: 100 });
    const started = Date.now();
    const outcome = await client.research('news', { userId: 'u-1' });
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(outcome).toMatchObject({
      status: 'error',
      error: { code: 'RESEARCH_TIMEOUT', kind: 'timeout', operation: 'discover', retryable: true },
    });
  });

  it('times out search when the service sends headers and then stalls the body', async () => {
    open.reply('search', { stallBody: true, json: { articles: [] } });
    const client = createShallowResearchClient({}, { baseUrl: open.url, auth: { type: 'none' }, searchTimeoutMs: 150 });
    const outcome = await client.research('news', { userId: 'u-1' });
    expect(outcome).toMatchObject({ status: 'error', error: { code: 'RESEARCH_TIMEOUT', operation: 'search' } });
  });

  it('maps a non-JSON body to a malformed-response error', async () => {
    open.reply('discover', { raw: '<html>gateway</html>' });
    const client = createShallowResearchClient({}, { baseUrl: open.url, auth: { type: 'none' } });
    const outcome = await client.research('news', { userId: 'u-1' });
    expect(outcome).toMatchObject({
      status: 'error',
      error: { code: 'RESEARCH_MALFORMED_RESPONSE', kind: 'malformed', operation: 'discover' },
    });
  });

  it('maps JSON of the wrong shape to a malformed-response error', async () => {
    open.reply('search', { json: { results: [] } });
    const client = createShallowResearchClient({}, { baseUrl: open.url, auth: { type: 'none' } });
    const outcome = await client.research('news', { userId: 'u-1' });
    expect(outcome).toMatchObject({ status: 'error', error: { code: 'RESEARCH_MALFORMED_RESPONSE', operation: 'search' } });
  });

  it('maps a refused connection to a network error', async () => {
    const gone = await startFakeResearchServer();
    const url = gone.url;
    await gone.close();
    const client = createShallowResearchClient({}, { baseUrl: url, auth: { type: 'none' } });
    const outcome = await client.research('news', { userId: 'u-1' });
    expect(outcome).toMatchObject({ status: 'error', error: { code: 'RESEARCH_NETWORK', kind: 'network' } });
  });

  it('keeps the query and credentials out of error messages', async () => {
    open.reply('discover', { status: 500, raw: 'secret-body' });
    const client = createShallowResearchClient(
      {},
      { baseUrl: open.url, auth: { type: 'service-key', serviceKey: 'sk-very-secret' } },
    );
    const outcome = await client.research('my private query', { userId: 'u-1' });
    if (outcome.status !== 'error') throw new Error('expected an error');
    const text = `${outcome.error.message} ${JSON.stringify(outcome.error.details)}`;
    for (const secret of ['sk-very-secret', 'my private query', 'secret-body']) expect(text).not.toContain(secret);
  });

  it('rejects invalid options when created', () => {
    const invalid = [
      { baseUrl: 'not a url', auth: { type: 'none' as const } },
      { baseUrl: 'ftp://x', auth: { type: 'none' as const } },
      { baseUrl: 'http://x', auth: { type: 'service-key' as const, serviceKey: '' } },
      { baseUrl: 'http://x', auth: { type: 'none' as const }, searchTimeoutMs: 0 },
    ];
    for (const options of invalid) {
      expect(() => createShallowResearchClient({}, options)).toThrow(
        expect.objectContaining({ code: 'RESEARCH_INVALID_OPTIONS' }),
      );
    }
  });
});

describe('toShallowResearchInput', () => {
  it('builds the __web-research__ input with a 60-character title', () => {
    const objective = `aktuelle News ${'x'.repeat(80)}`;
    const contextMarkdown = formatShallowResearch(objective, 1, [
      { url: 'https://n.example', title: 'T', excerpt: null, publishedAt: null },
    ]);
    expect(toShallowResearchInput(objective, { articles: [], feedCount: 1, contextMarkdown })).toEqual({
      id: '__web-research__',
      module: 'news-research',
      table: 'web',
      title: `Web-Research: "${objective.slice(0, 60)}"`,
      content: contextMarkdown,
    });
  });
});

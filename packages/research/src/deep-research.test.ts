import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type DeepResearchAnswer, createDeepResearchClient, formatDeepResearch, toDeepResearchInput } from './deep-research.js';
import { RESEARCH_FOOTER } from './shallow-research.js';
import { type FakeResearchServer, startFakeResearchServer } from './testing/index.js';

const SERVICE_KEY = 'test-service-key';
let server: FakeResearchServer;

beforeAll(async () => {
  server = await startFakeResearchServer({ serviceKey: SERVICE_KEY });
});
afterAll(() => server.close());
afterEach(() => {
  server.requests.length = 0;
  server.tasks.clear();
  server.reply('submit', undefined);
  server.reply('poll', undefined);
});

const client = (options: Partial<Parameters<typeof createDeepResearchClient>[1]> = {}) =>
  createDeepResearchClient({}, { baseUrl: server.url, serviceKey: SERVICE_KEY, ...options });

const answer: DeepResearchAnswer = {
  query: 'Solarförderung 2026',
  answer: '  Es gibt drei Programme.  ',
  citations: [
    { url: 'https://a.example', title: 'Quelle A', snippet: 'Auszug A' },
    { url: 'https://b.example', title: 'Quelle B' },
  ],
};

describe('createDeepResearchClient', () => {
  it('submits with the service headers and the default provider when asked', async () => {
    const submission = await client().submit('u-1', 'Solarförderung 2026');
    expect(submission).toEqual({
      taskId: 'task-1',
      status: 'queued',
      providerId: 'gemini-deep-research-max',
      costCredits: 1500,
    });
    const [request] = server.requestsTo('submit');
    expect(request?.body).toEqual({ query: 'Solarförderung 2026', provider: 'gemini-deep-research-max' });
    expect(request?.headers).toMatchObject({
      'content-type': 'application/json',
      'x-service-key': SERVICE_KEY,
      'x-user-id': 'u-1',
      'x-app-id': 'mana-ai',
    });
  });

  it('submits with the given provider when one is passed', async () => {
    await client().submit('u-1', 'q', 'openai-deep-research');
    expect(server.requestsTo('submit')[0]?.body).toMatchObject({ provider: 'openai-deep-research' });
  });

  it('polls with the service headers, no body and an encoded task id', async () => {
    server.tasks.set('a/b c', { userId: 'u-1', query: 'q', providerId: 'gemini-deep-research', status: 'running' });
    const poll = await client().poll('u-1', 'a/b c');
    expect(poll).toEqual({ taskId: 'a/b c', status: 'running', providerId: 'gemini-deep-research' });
    const [request] = server.requestsTo('poll');
    expect(request?.path).toBe('/api/v1/internal/research/async/a%2Fb%20c');
    expect(request?.method).toBe('GET');
    expect(request?.body).toBeUndefined();
    expect(request?.headers).toMatchObject({ 'x-service-key': SERVICE_KEY, 'x-user-id': 'u-1', 'x-app-id': 'mana-ai' });
  });

  it('returns the answer when the task is completed', async () => {
    server.tasks.set('t-1', { userId: 'u-1', query: 'q', providerId: 'p', status: 'completed', answer });
    const poll = await client().poll('u-1', 't-1');
    expect(poll).toEqual({ taskId: 't-1', status: 'completed', providerId: 'p', answer });
  });

  it('returns no answer when a completed task has an empty or missing answer text', async () => {
    server.tasks.set('t-1', {
      userId: 'u-1',
      query: 'q',
      providerId: 'p',
      status: 'completed',
      result: { answer: { answer: '   ', citations: [] } },
    });
    server.tasks.set('t-2', { userId: 'u-1', query: 'q', providerId: 'p', status: 'completed' });
    expect((await client().poll('u-1', 't-1')).answer).toBeUndefined();
    expect((await client().poll('u-1', 't-2')).answer).toBeUndefined();
  });

  it('drops citations without url or title when the answer carries them', async () => {
    server.tasks.set('t-1', {
      userId: 'u-1',
      query: 'q',
      providerId: 'p',
      status: 'completed',
      result: { answer: { answer: 'A', citations: [{ url: 'https://x' }, 'junk', { url: 'https://y', title: 'Y' }] } },
    });
    expect((await client().poll('u-1', 't-1')).answer).toEqual({
      answer: 'A',
      citations: [{ url: 'https://y', title: 'Y' }],
    });
  });

  it('throws a non-retryable 401 when the service key is wrong', async () => {
    const wrong = createDeepResearchClient({}, { baseUrl: server.url, serviceKey: 'wrong' });
    await expect(wrong.submit('u-1', 'q')).rejects.toMatchObject({
      name: 'ResearchError',
      code: 'RESEARCH_HTTP_STATUS',
      kind: 'http-status',
      operation: 'submit',
      status: 401,
      retryable: false,
    });
  });

  it('throws a 404 http-status error when the task is unknown for that user', async () => {
    server.tasks.set('t-1', { userId: 'u-1', query: 'q', providerId: 'p', status: 'running' });
    await expect(client().poll('u-2', 't-1')).rejects.toMatchObject({ operation: 'poll', status: 404 });
  });

  it('throws a 400 http-status error when mana-research rejects the query', async () => {
    await expect(client().submit('u-1', 'x'.repeat(4001))).rejects.toMatchObject({ status: 400, operation: 'submit' });
  });

  it('throws a retryable error when the service answers 503', async () => {
    server.reply('poll', { status: 503, raw: 'busy' });
    await expect(client().poll('u-1', 't')).rejects.toMatchObject({ status: 503, retryable: true });
  });

  it('times out the submit after the configured timeout when the service answers late', async () => {
    server.reply('submit', { delayMs: 2_000, json: { taskId: 't', status: 'queued', providerId: 'p' } });
    const started = Date.now();
    await expect(client({ submitTimeoutMs: 100 }).submit('u-1', 'q')).rejects.toMatchObject({
      code: 'RESEARCH_TIMEOUT',
      kind: 'timeout',
      operation: 'submit',
      retryable: true,
    });
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('times out the poll when the body stalls', async () => {
    server.reply('poll', { stallBody: true, json: { taskId: 't', status: 'running' } });
    await expect(client({ pollTimeoutMs: 100 }).poll('u-1', 't')).rejects.toMatchObject({
      code: 'RESEARCH_TIMEOUT',
      operation: 'poll',
    });
  });

  it('throws malformed-response errors when bodies are not JSON or lack required fields', async () => {
    server.reply('submit', { raw: 'not json' });
    await expect(client().submit('u-1', 'q')).rejects.toMatchObject({ code: 'RESEARCH_MALFORMED_RESPONSE' });
    server.reply('submit', { json: { status: 'queued' } });
    await expect(client().submit('u-1', 'q')).rejects.toMatchObject({ code: 'RESEARCH_MALFORMED_RESPONSE' });
    server.reply('submit', { json: { taskId: 't', status: 'completed' } });
    await expect(client().submit('u-1', 'q')).rejects.toMatchObject({ code: 'RESEARCH_MALFORMED_RESPONSE' });
    server.reply('poll', { json: { taskId: 't', status: 'exploded' } });
    await expect(client().poll('u-1', 't')).rejects.toMatchObject({ code: 'RESEARCH_MALFORMED_RESPONSE', kind: 'malformed' });
    server.reply('poll', { json: [1, 2] });
    await expect(client().poll('u-1', 't')).rejects.toMatchObject({ code: 'RESEARCH_MALFORMED_RESPONSE', operation: 'poll' });
  });

  it('falls back to the requested provider when the submit answer has none', async () => {
    server.reply('submit', { json: { taskId: 't', status: 'running' } });
    expect(await client().submit('u-1', 'q')).toEqual({ taskId: 't', status: 'running', providerId: 'gemini-deep-research-max' });
  });

  it('rejects an empty service key when created', () => {
    expect(() => createDeepResearchClient({}, { baseUrl: server.url, serviceKey: '' })).toThrow(
      expect.objectContaining({ code: 'RESEARCH_INVALID_OPTIONS' }),
    );
  });
});

describe('formatDeepResearch', () => {
  it('renders the answer and the sources in the upstream layout when citations exist', () => {
    expect(formatDeepResearch('Solarförderung 2026', answer)).toBe(
      [
        '# Deep-Research: "Solarförderung 2026"',
        '',
        'Es gibt drei Programme.',
        '',
        '## Quellen',
        '- [Quelle A](https://a.example) — Auszug A',
        '- [Quelle B](https://b.example)',
        '',
        '---',
        RESEARCH_FOOTER,
      ].join('\n'),
    );
  });

  it('leaves out the sources section when there are no citations', () => {
    expect(formatDeepResearch('Q', { answer: 'A', citations: [] })).toBe(
      ['# Deep-Research: "Q"', '', 'A', '', '---', RESEARCH_FOOTER].join('\n'),
    );
  });
});

describe('toDeepResearchInput', () => {
  it('builds the __web-research__ input titled with the first 60 characters', () => {
    const objective = 'y'.repeat(70);
    expect(toDeepResearchInput(objective, answer)).toEqual({
      id: '__web-research__',
      module: 'news-research',
      table: 'web',
      title: `Deep Research: "${'y'.repeat(60)}"`,
      content: formatDeepResearch(objective, answer),
    });
  });
});

import { createEventBus } from '@mana-ai/core';
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PROVIDER_ERROR_KINDS, ProviderCallError } from './errors.js';
import type { PlannerEvents } from './events.js';
import type { LlmHttpRequest, LlmTransport } from './llm-transport.js';
import { OPENAI_ADAPTER_DEFAULTS, createOpenAiCompatibleAdapter, type OpenAiCompatibleAdapterOptions } from './openai-adapter.js';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from './testing/index.js';

const noSleep = { sleep: async () => {} };
const request = { messages: [{ role: 'user' as const, content: 'Plane meine Woche' }], tools: [] };

async function failure(promise: Promise<unknown>): Promise<ProviderCallError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ProviderCallError);
    return error as ProviderCallError;
  }
  throw new Error('expected a ProviderCallError');
}

describe('createOpenAiCompatibleAdapter', () => {
  let llm: FakeLlmServer;
  beforeEach(async () => {
    llm = await createFakeLlmServer();
  });
  afterEach(() => llm.close());
  const adapter = (options: Partial<OpenAiCompatibleAdapterOptions> = {}, deps = {}) =>
    createOpenAiCompatibleAdapter({ ...noSleep, ...deps }, { baseUrl: llm.url, ...options });

  it('sends the upstream request body and parses content, tool calls, finish reason and usage', async () => {
    llm.enqueue(
      fakeReplies.toolCalls([{ id: 'call_1', name: 'create_task', arguments: { title: 'Einkaufen' } }], {
        usage: { prompt_tokens: 100, completion_tokens: 20 },
      }),
    );
    const tools = [
      { type: 'function' as const, function: { name: 'create_task', description: 'd', parameters: { type: 'object' as const, properties: {}, required: [] } } },
    ];
    const response = await adapter().complete({ ...request, tools });
    expect(response).toEqual({
      content: null,
      toolCalls: [{ id: 'call_1', name: 'create_task', arguments: { title: 'Einkaufen' } }],
      finishReason: 'tool_calls',
      usage: { promptTokens: 100, completionTokens: 20, totalTokens: 120 },
    });
    const sent = llm.requests[0]!;
    expect(sent.path).toBe('/v1/chat/completions');
    expect(sent.body).toMatchObject({ model: 'mana/reasoning', temperature: 0.3, stream: false, tool_choice: 'auto', tools });
    expect(sent.body!.messages).toEqual([{ role: 'user', content: 'Plane meine Woche' }]);
  });

  it('omits tools and tool_choice when no tools are offered', async () => {
    llm.enqueue(fakeReplies.text('ok', { usage: null }));
    const response = await adapter().complete(request);
    expect(response.usage).toBeUndefined();
    expect(llm.requests[0]!.body).not.toHaveProperty('tools');
    expect(llm.requests[0]!.body).not.toHaveProperty('tool_choice');
  });

  it('marks arguments that are not a JSON object', async () => {
    llm.enqueue(fakeReplies.toolCalls([{ name: 'create_task', arguments: '{"title": ' }, { name: 'create_task', arguments: '[1]' }]));
    const { toolCalls } = await adapter().complete(request);
    expect(toolCalls.map((call) => [call.arguments, call.argumentsError])).toEqual([
      [{}, 'not-json'],
      [{}, 'not-object'],
    ]);
  });

  it('sends Authorization Bearer when the auth style is bearer', async () => {
    await llm.close();
    llm = await createFakeLlmServer({ auth: { style: 'bearer', key: 'k-1' } });
    llm.enqueue(fakeReplies.text('ok'));
    await adapter({ apiKey: 'k-1' }).complete(request);
    expect(llm.requests[0]!.headers.authorization).toBe('Bearer k-1');
    expect(llm.requests[0]!.headers['x-api-key']).toBeUndefined();
  });

  it('sends X-API-Key and no Authorization when the auth style is x-api-key', async () => {
    await llm.close();
    llm = await createFakeLlmServer({ auth: { style: 'x-api-key', key: 'k-2' } });
    llm.enqueue(fakeReplies.text('ok'));
    await adapter({ apiKey: 'k-2', authStyle: 'x-api-key' }).complete(request);
    expect(llm.requests[0]!.headers['x-api-key']).toBe('k-2');
    expect(llm.requests[0]!.headers.authorization).toBeUndefined();
  });

  it('sends no auth header when no key is configured', async () => {
    llm.enqueue(fakeReplies.text('ok'));
    await adapter().complete(request);
    expect(llm.requests[0]!.headers.authorization).toBeUndefined();
  });

  it('fails with kind auth without retrying when the key is wrong', async () => {
    await llm.close();
    llm = await createFakeLlmServer({ auth: { style: 'bearer', key: 'right' } });
    const error = await failure(adapter({ apiKey: 'wrong' }).complete(request));
    expect(error).toMatchObject({ kind: 'auth', status: 401, attempts: 1, code: 'PLANNER_PROVIDER_ERROR', retryable: false });
    expect(error.message).not.toContain('wrong');
    expect(llm.requests).toHaveLength(1);
  });

  it('retries 5xx with backoff and succeeds when the server recovers', async () => {
    const events = createEventBus<PlannerEvents>();
    const retries: PlannerEvents['planner.provider-retry'][] = [];
    events.on('planner.provider-retry', (event) => retries.push(event));
    const delays: number[] = [];
    llm.enqueue(fakeReplies.error(500), fakeReplies.error(503), fakeReplies.text('ok'));
    const response = await createOpenAiCompatibleAdapter(
      { events, random: () => 0, sleep: async (ms) => void delays.push(ms) },
      { baseUrl: llm.url, retryBaseDelayMs: 100 },
    ).complete(request);
    expect(response.content).toBe('ok');
    expect(llm.requests).toHaveLength(3);
    expect(delays).toEqual([50, 100]);
    expect(retries.map((retry) => [retry.kind, retry.status, retry.attempt])).toEqual([
      ['server', 500, 1],
      ['server', 503, 2],
    ]);
  });

  it('fails with kind server after the last retry', async () => {
    llm.script({ reply: fakeReplies.error(502) });
    const error = await failure(adapter({ maxRetries: 2 }).complete(request));
    expect(error).toMatchObject({ kind: 'server', status: 502, attempts: 3, retryable: true, provider: new URL(llm.url).host });
    expect(llm.requests).toHaveLength(3);
  });

  it('waits retry-after on 429 and reports kind rate-limit when it persists', async () => {
    const delays: number[] = [];
    llm.script({ reply: fakeReplies.rateLimited(2) });
    const error = await failure(
      createOpenAiCompatibleAdapter({ sleep: async (ms) => void delays.push(ms) }, { baseUrl: llm.url, maxRetries: 1 }).complete(request),
    );
    expect(error).toMatchObject({ kind: 'rate-limit', status: 429, attempts: 2 });
    expect(delays).toEqual([2000]);
  });

  it('maps a mana-llm auth detail on 502 to kind auth', async () => {
    llm.script({ reply: fakeReplies.error(502, { body: { detail: { kind: 'auth', message: 'upstream key rejected' } } }) });
    const error = await failure(adapter().complete(request));
    expect(error).toMatchObject({ kind: 'auth', status: 502, attempts: 1 });
  });

  it('fails with kind rejected without retrying on other 4xx', async () => {
    llm.script({ reply: fakeReplies.error(400) });
    expect(await failure(adapter().complete(request))).toMatchObject({ kind: 'rejected', status: 400, attempts: 1 });
  });

  it('fails with kind bad-response when the body is malformed JSON or has no choices', async () => {
    llm.enqueue(fakeReplies.malformedJson(), fakeReplies.raw('{"choices": []}'));
    expect(await failure(adapter().complete(request))).toMatchObject({ kind: 'bad-response', attempts: 1 });
    expect(await failure(adapter().complete(request))).toMatchObject({ kind: 'bad-response', attempts: 1 });
  });

  it('fails with kind timeout when the server never answers', async () => {
    llm.script({ reply: fakeReplies.hang() });
    const started = Date.now();
    expect(await failure(adapter({ timeoutMs: 150 }).complete(request))).toMatchObject({ kind: 'timeout', attempts: 1 });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('fails with kind timeout when the body arrives after the timeout', async () => {
    llm.script({ reply: fakeReplies.slowBody(1000, fakeReplies.text('late')) });
    expect(await failure(adapter({ timeoutMs: 150 }).complete(request))).toMatchObject({ kind: 'timeout' });
  });

  it('answers when a delayed reply arrives within the timeout', async () => {
    llm.script({ reply: fakeReplies.delayed(50, fakeReplies.text('in time')) });
    expect((await adapter({ timeoutMs: 2000 }).complete(request)).content).toBe('in time');
  });

  it('retries and then fails with kind unreachable when nothing listens', async () => {
    const url = llm.url;
    await llm.close();
    const error = await failure(createOpenAiCompatibleAdapter(noSleep, { baseUrl: url, maxRetries: 1 }).complete(request));
    expect(error).toMatchObject({ kind: 'unreachable', attempts: 2, retryable: true });
    llm = await createFakeLlmServer();
  });

  it('sends extra headers, which win over the defaults, and no auth header without a key', async () => {
    llm.enqueue(fakeReplies.text('ok'));
    await adapter({ headers: { 'X-Trace': 't-1', Accept: 'application/vnd.test+json' } }).complete(request);
    expect(llm.requests[0]!.headers).toMatchObject({ 'x-trace': 't-1', accept: 'application/vnd.test+json', 'content-type': 'application/json' });
    expect(llm.requests[0]!.headers.authorization).toBeUndefined();
    expect(llm.requests[0]!.headers['x-api-key']).toBeUndefined();
  });

  it('sends through the injected fetch when one is given', async () => {
    llm.enqueue(fakeReplies.text('ok'));
    const urls: string[] = [];
    const counting: typeof fetch = (input, init) => {
      urls.push(String(input));
      return fetch(input, init);
    };
    expect((await adapter({ apiPrefix: '/v1/' }, { fetch: counting }).complete(request)).content).toBe('ok');
    expect(urls).toEqual([`${llm.url}/v1/chat/completions`]);
  });

  it('sends through the injected transport instead of fetch, reading status, headers and body from it', async () => {
    const sent: LlmHttpRequest[] = [];
    const answers = [
      { status: 429, headers: { 'retry-after': '2' }, body: '{}' },
      { status: 200, headers: {}, body: JSON.stringify({ choices: [{ message: { role: 'assistant', content: 'über den Transport' }, finish_reason: 'stop' }] }) },
    ];
    const transport: LlmTransport = async (call) => {
      sent.push(call);
      const answer = answers.shift()!;
      return { status: answer.status, header: (name) => (answer.headers as Record<string, string>)[name], readBody: async () => ({ text: answer.body }) };
    };
    const delays: number[] = [];
    const unused: typeof fetch = () => Promise.reject(new Error('fetch must not be called'));
    const response = await createOpenAiCompatibleAdapter(
      { transport, fetch: unused, sleep: async (ms) => void delays.push(ms) },
      { baseUrl: 'http://llm.test', apiKey: 'k-3' },
    ).complete(request);
    expect(response.content).toBe('über den Transport');
    expect(delays).toEqual([2000]);
    expect(sent).toHaveLength(2);
    expect(sent[0]).toMatchObject({ url: 'http://llm.test/v1/chat/completions', headers: { authorization: 'Bearer k-3', 'content-type': 'application/json' } });
    expect(JSON.parse(new TextDecoder().decode(sent[0]!.body))).toMatchObject({ model: 'mana/reasoning', messages: [{ role: 'user', content: 'Plane meine Woche' }] });
    expect(sent[0]!.signal).toBeInstanceOf(AbortSignal);
  });

  it('fails with kind too-large with the bytes received when the transport cuts the body', async () => {
    const transport: LlmTransport = async () => ({ status: 200, header: () => undefined, readBody: async () => ({ text: undefined, receivedBytes: 6000 }) });
    const error = await failure(createOpenAiCompatibleAdapter({ transport }, { baseUrl: 'http://llm.test', maxResponseBytes: 5000 }).complete(request));
    expect(error).toMatchObject({ kind: 'too-large', status: 200, attempts: 1, receivedBytes: 6000 });
  });

  it('honours retry-after-ms and caps retry-after at retryMaxDelayMs', async () => {
    const delays: number[] = [];
    llm.enqueue(
      fakeReplies.error(429, { headers: { 'retry-after-ms': '250' } }),
      fakeReplies.error(503, { headers: { 'retry-after': '3600' } }),
      fakeReplies.text('ok'),
    );
    const response = await createOpenAiCompatibleAdapter(
      { sleep: async (ms) => void delays.push(ms) },
      { baseUrl: llm.url, retryMaxDelayMs: 4000 },
    ).complete(request);
    expect(response.content).toBe('ok');
    expect(delays).toEqual([250, 4000]);
  });

  it('rethrows the caller abort at once without retrying when the signal aborts during a call', async () => {
    llm.script({ reply: fakeReplies.hang() });
    const controller = new AbortController();
    const reason = new Error('shutdown');
    setTimeout(() => controller.abort(reason), 50);
    const started = Date.now();
    await expect(adapter({ timeoutMs: 10_000 }).complete({ ...request, signal: controller.signal })).rejects.toBe(reason);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(llm.requests).toHaveLength(1);
  });

  it('rethrows the caller abort at once when the signal aborts while waiting to retry', async () => {
    llm.script({ reply: fakeReplies.error(503) });
    const controller = new AbortController();
    const reason = new Error('shutdown');
    const events = createEventBus<PlannerEvents>();
    events.on('planner.provider-retry', () => setTimeout(() => controller.abort(reason), 20));
    const started = Date.now();
    const call = createOpenAiCompatibleAdapter({ events }, { baseUrl: llm.url, retryBaseDelayMs: 5000, retryMaxDelayMs: 5000 }).complete({
      ...request,
      signal: controller.signal,
    });
    await expect(call).rejects.toBe(reason);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(llm.requests).toHaveLength(1);
  });

  it('reads an answer of exactly maxResponseBytes and fails with kind too-large one byte past it', async () => {
    llm.enqueue(fakeReplies.large(5000, { chunkBytes: 700 }), fakeReplies.large(5001, { chunkBytes: 700 }));
    const response = await adapter({ maxResponseBytes: 5000 }).complete(request);
    expect(response.content).toMatch(/^x+$/);
    const error = await failure(adapter({ maxResponseBytes: 5000 }).complete(request));
    expect(error).toMatchObject({ kind: 'too-large', attempts: 1, retryable: false });
    // What arrived before the cut: past the cap, within the one body sent.
    expect(error.receivedBytes).toBeGreaterThan(5000);
    expect(error.receivedBytes).toBeLessThanOrEqual(5001);
  });

  it('fails with kind too-large quickly, without reading it all, when the provider streams a 50 MB answer', async () => {
    const total = 50 * 1024 * 1024;
    llm.script({ reply: fakeReplies.large(total) });
    const started = Date.now();
    const error = await failure(adapter().complete(request));
    const elapsedMs = Date.now() - started;
    const sentWhenFailed = llm.requests[0]!.bytesSent;
    expect(error).toMatchObject({ kind: 'too-large', status: 200, attempts: 1, retryable: false, code: 'PLANNER_PROVIDER_ERROR' });
    expect(error.message).toBe(`LLM provider answer exceeds ${OPENAI_ADAPTER_DEFAULTS.maxResponseBytes} bytes`);
    expect(elapsedMs).toBeLessThan(3000);
    // What the server wrote is the cap plus what the socket buffers held, nowhere near 50 MB.
    expect(sentWhenFailed).toBeLessThan(16 * 1024 * 1024);
    await vi.waitFor(() => expect(llm.requests[0]!.closedEarly).toBe(true), { timeout: 5000 });
    expect(llm.requests[0]!.bytesSent).toBeLessThan(total);
    expect(llm.requests).toHaveLength(1);
  });

  it('fails with kind too-large before reading the body when content-length exceeds the cap', async () => {
    llm.script({ reply: fakeReplies.large(50 * 1024 * 1024, { declareLength: true }) });
    // Nothing read: the body counts as the cap (it is known to be at least that long).
    expect(await failure(adapter().complete(request))).toMatchObject({ kind: 'too-large', attempts: 1, receivedBytes: OPENAI_ADAPTER_DEFAULTS.maxResponseBytes });
    await vi.waitFor(() => expect(llm.requests[0]!.closedEarly).toBe(true), { timeout: 5000 });
    expect(llm.requests[0]!.bytesSent).toBeLessThan(16 * 1024 * 1024);
  });

  it('fails with kind timeout when the body trickles in for longer than timeoutMs', async () => {
    // 100 bytes every 25 ms: no gap comes near the timeout, the whole body takes about 1 s.
    llm.script({ reply: fakeReplies.large(4000, { chunkBytes: 100, intervalMs: 25 }) });
    const started = Date.now();
    expect(await failure(adapter({ timeoutMs: 200, maxRetries: 0 }).complete(request))).toMatchObject({ kind: 'timeout', attempts: 1 });
    expect(Date.now() - started).toBeLessThan(800);
    await vi.waitFor(() => expect(llm.requests[0]!.closedEarly).toBe(true), { timeout: 5000 });
  });

  it('rejects invalid options with PLANNER_INVALID_OPTIONS', () => {
    expect(() => createOpenAiCompatibleAdapter({}, { baseUrl: 'not a url' })).toThrow(expect.objectContaining({ code: 'PLANNER_INVALID_OPTIONS' }));
    expect(() => createOpenAiCompatibleAdapter({}, { baseUrl: llm.url, maxRetries: -1 })).toThrow(/maxRetries/);
    expect(() => createOpenAiCompatibleAdapter({}, { baseUrl: llm.url, maxResponseBytes: 0 })).toThrow(/maxResponseBytes/);
    expect(() => createOpenAiCompatibleAdapter({}, { baseUrl: llm.url, apiKey: 'secret\nvalue' })).toThrow(
      expect.objectContaining({ code: 'PLANNER_INVALID_OPTIONS', message: expect.not.stringContaining('secret') }),
    );
  });

  it('lists every provider error kind once', () => {
    expect([...PROVIDER_ERROR_KINDS].sort()).toEqual(['auth', 'bad-response', 'rate-limit', 'rejected', 'server', 'timeout', 'too-large', 'unreachable']);
  });

  it('imports nothing Node-only, so it runs in a browser', () => {
    for (const file of ['openai-adapter.ts', 'openai-wire.ts', 'read-body.ts', 'llm-transport.ts']) {
      const source = readFileSync(new URL(`./${file}`, import.meta.url), 'utf8');
      expect(source, file).not.toMatch(/from '(node:|openai)|\bBuffer\b|\bprocess\./);
    }
  });
});

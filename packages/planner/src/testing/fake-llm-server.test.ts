import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from './index.js';

const post = (url: string, body: unknown, path = '/v1/chat/completions') =>
  fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-test': '1' }, body: JSON.stringify(body) });
const chat = (content: string, extra: Record<string, unknown> = {}) => ({ model: 'm', messages: [{ role: 'user', content }], ...extra });

describe('createFakeLlmServer', () => {
  let llm: FakeLlmServer;
  beforeEach(async () => {
    llm = await createFakeLlmServer();
  });
  afterEach(() => llm.close());

  it('listens on 127.0.0.1 and answers with a chat completion including usage', async () => {
    expect(llm.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    llm.enqueue(fakeReplies.toolCalls([{ name: 'create_task', arguments: { title: 'x' } }]));
    const body = await (await post(llm.url, chat('hi'))).json();
    expect(body.choices[0]).toMatchObject({
      finish_reason: 'tool_calls',
      message: { role: 'assistant', content: null, tool_calls: [{ type: 'function', function: { name: 'create_task', arguments: '{"title":"x"}' } }] },
    });
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
    expect(llm.requests[0]).toMatchObject({ method: 'POST', path: '/v1/chat/completions', rule: 0, headers: { 'x-test': '1' }, body: chat('hi') });
  });

  it('answers without the /v1 prefix too', async () => {
    llm.script({ reply: fakeReplies.text('plain') });
    const body = await (await post(llm.url, chat('hi'), '/chat/completions')).json();
    expect(body.choices[0].message.content).toBe('plain');
  });

  it('picks the first rule whose matchers hold and that has uses left', async () => {
    llm.script(
      { when: { model: 'compact-model' }, reply: fakeReplies.text('by model') },
      { when: { hasToolResult: true }, reply: fakeReplies.text('by tool result') },
      { when: { lastUserMessage: /Woche/ }, times: 1, reply: fakeReplies.text('by user message') },
      { when: { toolOffered: 'create_task' }, reply: (request) => fakeReplies.text(`offered to ${request.body?.model}`) },
    );
    const answer = async (body: unknown) => (await (await post(llm.url, body)).json()).choices[0].message.content;
    expect(await answer(chat('x', { model: 'compact-model' }))).toBe('by model');
    expect(await answer({ model: 'm', messages: [{ role: 'user', content: 'x' }, { role: 'tool', tool_call_id: 'c', content: '{}' }] })).toBe('by tool result');
    expect(await answer(chat('Plane meine Woche'))).toBe('by user message');
    const tools = [{ type: 'function', function: { name: 'create_task' } }];
    expect(await answer(chat('Plane meine Woche', { tools }))).toBe('offered to m');
    const unmatched = await post(llm.url, chat('Plane meine Woche'));
    expect(unmatched.status).toBe(500);
    expect(llm.requests.at(-1)!.rule).toBeNull();
  });

  it('serves faults: HTTP errors with headers, malformed JSON and custom usage', async () => {
    llm.enqueue(fakeReplies.rateLimited(3), fakeReplies.malformedJson(), fakeReplies.text('u', { usage: { prompt_tokens: 7, completion_tokens: 3 } }));
    const limited = await post(llm.url, chat('a'));
    expect([limited.status, limited.headers.get('retry-after')]).toEqual([429, '3']);
    await expect((await post(llm.url, chat('b'))).json()).rejects.toThrow();
    expect((await (await post(llm.url, chat('c'))).json()).usage).toEqual({ prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 });
  });

  it('applies latency and lets close() cut a hanging request', async () => {
    await llm.close();
    llm = await createFakeLlmServer({ latencyMs: 60, defaultReply: fakeReplies.text('late') });
    const started = Date.now();
    await post(llm.url, chat('a'));
    expect(Date.now() - started).toBeGreaterThanOrEqual(55);
    llm.script({ reply: fakeReplies.hang() });
    const pending = post(llm.url, chat('b')).catch((error: unknown) => error);
    await llm.waitForRequests(2);
    await llm.close();
    expect(await pending).toBeInstanceOf(Error);
    llm = await createFakeLlmServer();
  });

  it('answers 401 when an api key is required and missing', async () => {
    await llm.close();
    llm = await createFakeLlmServer({ auth: { style: 'x-api-key', key: 'k' }, defaultReply: fakeReplies.text('ok') });
    expect((await post(llm.url, chat('a'))).status).toBe(401);
    const ok = await fetch(`${llm.url}/v1/chat/completions`, { method: 'POST', headers: { 'x-api-key': 'k' }, body: JSON.stringify(chat('a')) });
    expect(ok.status).toBe(200);
  });
});

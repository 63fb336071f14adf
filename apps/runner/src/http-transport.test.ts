import { type Server, createServer } from 'node:http';
import { type AddressInfo, createServer as createTcpServer } from 'node:net';
import { ProviderCallError, createOpenAiCompatibleAdapter } from '@mana-ai/planner';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from '@mana-ai/planner/testing';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type HttpTransport, createHttpTransport } from './http-transport.js';

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

/** A plain server answering every request with `handler`, remembering the client port of each. */
async function startServer(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string; ports: number[] }> {
  const ports: number[] = [];
  const server = createServer((incoming, outgoing) => {
    ports.push(incoming.socket.remotePort ?? 0);
    handler?.(incoming, outgoing);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, ports };
}

describe('createHttpTransport', () => {
  let llm: FakeLlmServer;
  let http: HttpTransport;
  beforeEach(async () => {
    llm = await createFakeLlmServer();
    http = createHttpTransport();
  });
  afterEach(async () => {
    http.close();
    await llm.close();
  });
  const adapter = (options: { timeoutMs?: number; maxRetries?: number; maxResponseBytes?: number } = {}) =>
    createOpenAiCompatibleAdapter({ transport: http.transport, sleep: async () => {} }, { baseUrl: llm.url, apiKey: 'k-1', ...options });

  it('carries the planner adapter’s request and answer, headers and body, when the LLM answers', async () => {
    llm.enqueue(fakeReplies.toolCalls([{ id: 'call_1', name: 'create_task', arguments: { title: 'Einkaufen' } }], { usage: { prompt_tokens: 9, completion_tokens: 3 } }));
    const response = await adapter().complete(request);
    expect(response).toEqual({
      content: null,
      toolCalls: [{ id: 'call_1', name: 'create_task', arguments: { title: 'Einkaufen' } }],
      finishReason: 'tool_calls',
      usage: { promptTokens: 9, completionTokens: 3, totalTokens: 12 },
    });
    const sent = llm.requests[0]!;
    expect(sent.method).toBe('POST');
    expect(sent.path).toBe('/v1/chat/completions');
    expect(sent.headers).toMatchObject({ authorization: 'Bearer k-1', 'content-type': 'application/json' });
    expect(sent.body?.messages).toEqual([{ role: 'user', content: 'Plane meine Woche' }]);
  });

  it('reads status and retry-after of an error answer, so a 429 is retried after the delay it names', async () => {
    const delays: number[] = [];
    llm.enqueue(fakeReplies.error(429, { headers: { 'retry-after-ms': '250' } }), fakeReplies.text('ok'));
    const response = await createOpenAiCompatibleAdapter({ transport: http.transport, sleep: async (ms) => void delays.push(ms) }, { baseUrl: llm.url }).complete(request);
    expect(response.content).toBe('ok');
    expect(delays).toEqual([250]);
  });

  it('cuts a streamed 50 MB answer where it crosses the response-size bound and drops the connection', async () => {
    const total = 50 * 1024 * 1024;
    llm.script({ reply: fakeReplies.large(total) });
    expect(await failure(adapter().complete(request))).toMatchObject({ kind: 'too-large', status: 200, attempts: 1 });
    // What the server wrote is the cap plus what the socket buffers held, nowhere near 50 MB.
    expect(llm.requests[0]!.bytesSent).toBeLessThan(16 * 1024 * 1024);
    await vi.waitFor(() => expect(llm.requests[0]!.closedEarly).toBe(true), { timeout: 5000 });
  });

  it('fails with kind too-large before reading a body whose content-length exceeds the bound', async () => {
    llm.script({ reply: fakeReplies.large(50 * 1024 * 1024, { declareLength: true }) });
    expect(await failure(adapter().complete(request))).toMatchObject({ kind: 'too-large', attempts: 1 });
    await vi.waitFor(() => expect(llm.requests[0]!.closedEarly).toBe(true), { timeout: 5000 });
  });

  it('fails with kind timeout when the LLM never answers, and when its body arrives too late', async () => {
    llm.enqueue(fakeReplies.hang(), fakeReplies.slowBody(1000, fakeReplies.text('late')));
    expect(await failure(adapter({ timeoutMs: 150, maxRetries: 0 }).complete(request))).toMatchObject({ kind: 'timeout', attempts: 1 });
    expect(await failure(adapter({ timeoutMs: 150, maxRetries: 0 }).complete(request))).toMatchObject({ kind: 'timeout', attempts: 1 });
  });

  it('fails with kind timeout and drops the connection when the body trickles in past the timeout', async () => {
    llm.script({ reply: fakeReplies.large(4000, { chunkBytes: 100, intervalMs: 25 }) });
    expect(await failure(adapter({ timeoutMs: 200, maxRetries: 0 }).complete(request))).toMatchObject({ kind: 'timeout', attempts: 1 });
    await vi.waitFor(() => expect(llm.requests[0]!.closedEarly).toBe(true), { timeout: 5000 });
  });

  it('rethrows the caller’s abort reason when the caller aborts during a call', async () => {
    llm.script({ reply: fakeReplies.hang() });
    const controller = new AbortController();
    const reason = new Error('shutdown');
    setTimeout(() => controller.abort(reason), 50);
    await expect(adapter({ timeoutMs: 10_000 }).complete({ ...request, signal: controller.signal })).rejects.toBe(reason);
  });

  it('fails with kind unreachable when nothing listens', async () => {
    const url = llm.url;
    await llm.close();
    const error = await failure(createOpenAiCompatibleAdapter({ transport: http.transport, sleep: async () => {} }, { baseUrl: url, maxRetries: 1 }).complete(request));
    expect(error).toMatchObject({ kind: 'unreachable', attempts: 2 });
    llm = await createFakeLlmServer();
  });

  const completion = JSON.stringify({ choices: [{ message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }] });

  it('sends consecutive calls over one kept-alive connection', async () => {
    const { server, url, ports } = await startServer((_incoming, outgoing) => outgoing.end(completion));
    try {
      const plain = createOpenAiCompatibleAdapter({ transport: http.transport }, { baseUrl: url });
      for (let index = 0; index < 3; index++) expect((await plain.complete(request)).content).toBe('ok');
      expect(new Set(ports).size).toBe(1);
    } finally {
      server.close();
    }
  });

  it('follows a redirect like fetch does, re-sending the body', async () => {
    const bodies: string[] = [];
    const { server, url } = await startServer((incoming, outgoing) => {
      let body = '';
      incoming.on('data', (chunk) => (body += chunk));
      incoming.on('end', () => {
        bodies.push(`${incoming.url} ${JSON.parse(body).messages[0].content}`);
        if (incoming.url === '/v1/chat/completions') outgoing.writeHead(307, { location: '/moved/chat/completions' }).end();
        else outgoing.end(completion);
      });
    });
    try {
      const moved = createOpenAiCompatibleAdapter({ transport: http.transport }, { baseUrl: url });
      expect((await moved.complete(request)).content).toBe('ok');
      expect(bodies).toEqual(['/v1/chat/completions Plane meine Woche', '/v1/chat/completions Plane meine Woche', '/moved/chat/completions Plane meine Woche']);
    } finally {
      server.close();
    }
  });

  it('fails with kind bad-response when the connection drops in the middle of the body', async () => {
    const { server, url } = await startServer((_incoming, outgoing) => {
      outgoing.writeHead(200, { 'content-length': '1000' }).write('{"choices": [');
      setTimeout(() => outgoing.socket?.destroy(), 20);
    });
    try {
      const dropped = createOpenAiCompatibleAdapter({ transport: http.transport }, { baseUrl: url, maxRetries: 0 });
      expect(await failure(dropped.complete(request))).toMatchObject({ kind: 'bad-response', attempts: 1 });
    } finally {
      server.close();
    }
  });

  it('reads the final answer after an informational 103 one', async () => {
    const server = createTcpServer((socket) => {
      socket.once('data', () => {
        socket.write('HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n');
        socket.end(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(completion)}\r\nConnection: close\r\n\r\n${completion}`);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const hinted = createOpenAiCompatibleAdapter({ transport: http.transport }, { baseUrl: url, maxRetries: 0 });
      expect((await hinted.complete(request)).content).toBe('ok');
    } finally {
      server.close();
    }
  });

  it('sends a call again on a new connection when the server closed the kept-alive one as the call went out', async () => {
    // A raw HTTP/1.1 server that answers on keep-alive connections, but closes its first connection
    // without an answer when a second request arrives on it (a server's idle timeout racing the call).
    const connections: number[] = [];
    const server = createTcpServer((socket) => {
      const connection = connections.push(0) - 1;
      socket.on('data', () => {
        connections[connection]! += 1;
        if (connection === 0 && connections[connection] === 2) socket.destroy();
        else socket.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(completion)}\r\nConnection: keep-alive\r\n\r\n${completion}`);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const once = createOpenAiCompatibleAdapter({ transport: http.transport }, { baseUrl: url, maxRetries: 0 });
      expect((await once.complete(request)).content).toBe('ok');
      expect((await once.complete(request)).content).toBe('ok');
      // The first connection carried the first call and the refused one; the second call was answered on a new one.
      expect(connections).toEqual([2, 1]);
    } finally {
      server.close();
    }
  });
});

import type { Mission } from '@mana-ai/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPlanner } from './planner.js';
import { createPlannerPort } from './planner-port.js';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from './testing/index.js';

let llm: FakeLlmServer;
beforeAll(async () => {
  llm = await createFakeLlmServer();
});
afterEach(() => llm.reset());
afterAll(() => llm.close());

const mission: Mission = {
  id: 'm-1',
  userId: 'u-1',
  title: 'Wochenplanung',
  objective: 'Plane meine Woche',
  conceptMarkdown: '',
  state: 'active',
  inputs: [],
  cadence: { kind: 'interval', everyMinutes: 60 },
  iterations: [],
};

const request = { mission, agent: null, inputs: [], iterationId: 'i-1', runId: 'r-1', tokensUsed24h: 0 };

describe('createPlannerPort', () => {
  it('returns the planned calls, summary, usage and rounds when the LLM proposes a tool call', async () => {
    llm.script(
      { when: { hasToolResult: false }, reply: fakeReplies.toolCalls([{ name: 'create_task', arguments: { title: 'Einkaufen' } }]) },
      { when: { hasToolResult: true }, reply: fakeReplies.text('Ein Task.') },
    );
    const port = createPlannerPort(createPlanner({}, { llm: { baseUrl: llm.url, apiKey: 'k', maxRetries: 0 } }));
    const outcome = await port.plan(request);
    expect(outcome).toMatchObject({ ok: true, calls: [{ toolName: 'create_task', params: { title: 'Einkaufen' } }], summary: 'Ein Task.', rounds: 2 });
    expect(outcome.usage.totalTokens).toBeGreaterThan(0);
  });

  it('answers a failed plan with the error kind instead of throwing when the provider fails', async () => {
    llm.enqueue(fakeReplies.error(500));
    const port = createPlannerPort(createPlanner({}, { llm: { baseUrl: llm.url, apiKey: 'k', maxRetries: 0 } }));
    const outcome = await port.plan(request);
    expect(outcome.ok).toBe(false);
    expect(outcome).toMatchObject({ reason: expect.stringMatching(/^llm-error: \w/) });
  });

  it('answers a failed plan with its tokens when the answer was cut off at the length limit', async () => {
    llm.enqueue(fakeReplies.text('Ich plane die Wo', { finishReason: 'length', usage: { prompt_tokens: 90, completion_tokens: 10 } }));
    const port = createPlannerPort(createPlanner({}, { llm: { baseUrl: llm.url, apiKey: 'k', maxRetries: 0 } }));
    expect(await port.plan(request)).toEqual({ ok: false, reason: 'llm-truncated', usage: { promptTokens: 90, completionTokens: 10, totalTokens: 100 } });
  });
});

import { createEventBus } from '@mana-ai/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PlannerEvents } from './events.js';
import { planToIteration } from './iteration.js';
import { createPlanner, planFailureReason } from './planner.js';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from './testing/index.js';

let llm: FakeLlmServer;
beforeAll(async () => {
  llm = await createFakeLlmServer();
});
afterAll(() => llm.close());

describe('createPlanner', () => {
  it('plans a mission end to end with the agent policy, prompts and reminders', async () => {
    llm.script(
      { when: { hasToolResult: false }, reply: fakeReplies.toolCalls([{ name: 'create_task', arguments: { title: 'Einkaufen' } }], { usage: { prompt_tokens: 800, completion_tokens: 50 } }) },
      { when: { hasToolResult: true }, reply: fakeReplies.text('Ich habe einen Task angelegt.', { usage: { prompt_tokens: 900, completion_tokens: 20 } }) },
    );
    const events = createEventBus<PlannerEvents>();
    const reminders: string[] = [];
    events.on('planner.reminder.emitted', (event) => reminders.push(`${event.producer}:${event.severity}`));
    const planner = createPlanner({ events }, { llm: { baseUrl: llm.url, apiKey: 'k', maxRetries: 0 } });
    const agent = {
      id: 'a-1',
      userId: 'u-1',
      name: 'Mana',
      role: 'Planerin',
      state: 'active',
      maxConcurrentMissions: 1,
      maxTokensPerDay: 10_000,
      policy: { tools: { create_event: 'deny' as const }, defaultForAi: 'propose' as const },
    };
    const result = await planner.planMission({
      mission: { title: 'Wochenplanung', objective: 'Plane meine Woche', conceptMarkdown: '', iterations: [] },
      agent,
      pretickUsage24h: 7000,
      context: { missionId: 'm-1', agentId: 'a-1' },
    });
    expect(result.plan).toEqual({
      steps: [{ summary: 'create_task', toolName: 'create_task', params: { title: 'Einkaufen' }, rationale: '' }],
      summary: 'Ich habe einen Task angelegt.',
    });
    expect(result.usage.totalTokens).toBe(1770);
    expect(reminders).toEqual(['token-budget:warn']);
    const first = llm.requests[0]!.body!;
    expect(first.model).toBe('mana/reasoning');
    expect(first.messages![0]!.content).toContain('<agent_context>\nAgent: Mana\nRolle: Planerin');
    expect(first.messages![1]!.content).toContain('# Mission: Wochenplanung');
    expect(first.tools!.map((tool) => tool.function.name)).not.toContain('create_event');
    expect(first.tools).toHaveLength(61);
    expect(planToIteration(result.plan, 'i-1', '2026-01-01T00:00:00.000Z').overallStatus).toBe('awaiting-review');
  });

  it('applies its output limits to the plan and names a truncated answer as a failure', async () => {
    llm.reset();
    const calls = Array.from({ length: 5 }, (_, index) => ({ name: 'create_task', arguments: { title: `T${index}` } }));
    llm.enqueue(fakeReplies.toolCalls(calls, { content: 'Zusammenfassung' }), fakeReplies.text('abgeschn', { finishReason: 'length' }));
    const planner = createPlanner({}, { llm: { baseUrl: llm.url, maxRetries: 0 }, maxToolCalls: 2, maxSummaryChars: 5 });
    const mission = { title: 'W', objective: 'O', conceptMarkdown: '', iterations: [] };
    const full = await planner.planMission({ mission });
    expect(full.plan).toMatchObject({ steps: [{ params: { title: 'T0' } }, { params: { title: 'T1' } }], summary: 'Zusam' });
    expect(planFailureReason(full)).toBeUndefined();
    const truncated = await planner.planMission({ mission });
    expect(truncated.stopReason).toBe('truncated');
    expect(planFailureReason(truncated)).toBe('llm-truncated');
    expect(planFailureReason({ stopReason: 'llm-error', error: undefined })).toBe('llm-error: unknown');
  });

  it('requires an adapter or llm options', () => {
    expect(() => createPlanner({}, {})).toThrow(expect.objectContaining({ code: 'PLANNER_INVALID_OPTIONS' }));
  });
});

import { describe, expect, it } from 'vitest';
import { type LoopState, createReminderChannel } from './reminders.js';

const state = (overrides: Partial<LoopState> = {}): LoopState => ({
  round: 1,
  toolCallCount: 0,
  usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0 },
  lastCall: undefined,
  recentCalls: [],
  compactionsDone: 0,
  ...overrides,
});
const failed = { round: 1, call: { id: 'c', name: 'x', arguments: {} }, result: { success: false, message: 'no' } };
const ok = { ...failed, result: { success: true, message: 'ok' } };

describe('createReminderChannel', () => {
  const agent = { name: 'Mana', maxTokensPerDay: 100_000 };

  it('warns from 75 % and escalates from 100 % of the daily budget including this run', () => {
    const channel = createReminderChannel({ agent, pretickUsage24h: 70_000 });
    expect(channel(state({ usage: { promptTokens: 4000, completionTokens: 999, totalTokens: 4999 } }))).toEqual([]);
    const [warn] = channel(state({ usage: { promptTokens: 5000, completionTokens: 5000, totalTokens: 10_000 } }));
    expect(warn).toMatchObject({ producer: 'token-budget', severity: 'warn' });
    expect(warn!.text).toContain('Agent Mana hat 80% des Tagesbudgets verbraucht (80000 / 100000 Tokens)');
    const [escalate] = channel(state({ usage: { promptTokens: 30_000, completionTokens: 0, totalTokens: 30_000 } }));
    expect(escalate).toMatchObject({ producer: 'token-budget', severity: 'escalate' });
    expect(escalate!.text).toContain('100000 / 100000 Tokens = 100%');
  });

  it('stays silent about the budget when the agent has none', () => {
    const channel = createReminderChannel({ agent: { name: 'Mana' }, pretickUsage24h: 10 ** 9 });
    expect(channel(state())).toEqual([]);
  });

  it('reminds of the compaction in every round after it', () => {
    const channel = createReminderChannel({ locale: 'en' });
    expect(channel(state({ compactionsDone: 1 }))).toEqual([{ producer: 'compacted', severity: 'info', text: expect.stringContaining('<compact-summary>') }]);
  });

  it('fires retry-loop only from round 3 when the last two calls failed', () => {
    const channel = createReminderChannel();
    expect(channel(state({ round: 2, recentCalls: [failed, failed] }))).toEqual([]);
    expect(channel(state({ round: 3, recentCalls: [failed, ok] }))).toEqual([]);
    expect(channel(state({ round: 3, recentCalls: [ok, failed, failed] }))).toEqual([
      { producer: 'retry-loop', severity: 'warn', text: expect.stringContaining('Die letzten 2 Tool-Calls sind fehlgeschlagen') },
    ]);
  });
});

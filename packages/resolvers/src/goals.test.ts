import { describe, expect, it } from 'vitest';
import { createGoalsResolver } from './goals.js';
import type { ReplayRecord } from './ports.js';

const context = { userId: 'u1', missionId: 'm1' };
const ref = { module: 'goals', table: 'companionGoals', id: 'g1' };

function replayFrom(records: Record<string, Record<string, unknown>>): { replay: ReplayRecord; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    replay: async (userId, appId, table, id) => {
      calls.push(`${userId}/${appId}/${table}/${id}`);
      return records[`${appId}/${table}/${id}`] ?? null;
    },
  };
}

describe('createGoalsResolver', () => {
  it('formats progress from the goals app when the goal exists', async () => {
    const { replay, calls } = replayFrom({
      'goals/companionGoals/g1': { title: 'Laufen', currentValue: 3, target: { value: 10 }, period: 'Woche' },
    });
    expect(await createGoalsResolver({ replayRecord: replay })(ref, context)).toEqual({
      id: 'g1',
      module: 'goals',
      table: 'companionGoals',
      title: 'Laufen',
      content: 'Fortschritt: 3 / 10 (Woche)',
    });
    expect(calls).toEqual(['u1/goals/companionGoals/g1']);
  });

  it('uses the defaults when the goal has no title, value, target or period', async () => {
    const { replay } = replayFrom({ 'goals/companionGoals/g1': {} });
    expect(await createGoalsResolver({ replayRecord: replay })(ref, context)).toMatchObject({
      title: 'Goal',
      content: 'Fortschritt: 0 / ? (unbekannt)',
    });
  });

  it('reads from the configured app id when one is given', async () => {
    const { replay, calls } = replayFrom({ 'companion/companionGoals/g1': { title: 'X' } });
    expect(await createGoalsResolver({ replayRecord: replay }, { appId: 'companion' })(ref, context)).toMatchObject({ title: 'X' });
    expect(calls).toEqual(['u1/companion/companionGoals/g1']);
  });

  it('returns null when the goal is not in the log', async () => {
    expect(await createGoalsResolver({ replayRecord: replayFrom({}).replay })(ref, context)).toBeNull();
  });

  it('never shows a ciphertext title when the title is still encrypted', async () => {
    const { replay } = replayFrom({ 'goals/companionGoals/g1': { title: 'enc:1:AAAA.BBBB' } });
    expect(await createGoalsResolver({ replayRecord: replay })(ref, context)).toMatchObject({ title: 'Goal' });
  });
});

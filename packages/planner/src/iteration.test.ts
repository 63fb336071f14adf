import { describe, expect, it } from 'vitest';
import { planFromLoop, planToIteration } from './iteration.js';

describe('planToIteration', () => {
  it('builds the upstream iteration shape with keys in wire order when there are steps', () => {
    const plan = planFromLoop({
      executedCalls: [{ round: 1, call: { id: 'c1', name: 'create_task', arguments: { title: 'Einkaufen' } }, result: { success: true, message: 'ok' } }],
      summary: 'Ich habe einen Task angelegt.',
    });
    const iteration = planToIteration(plan, '9b2e', '2026-04-21T06:01:02.345Z');
    expect(JSON.stringify(iteration)).toBe(
      '{"id":"9b2e","startedAt":"2026-04-21T06:01:02.345Z","finishedAt":"2026-04-21T06:01:02.345Z","plan":[{"id":"9b2e-0","summary":"create_task","intent":{"kind":"toolCall","toolName":"create_task","params":{"title":"Einkaufen"}},"status":"planned"}],"summary":"Ich habe einen Task angelegt.","overallStatus":"awaiting-review","source":"server"}',
    );
  });

  it('marks an empty plan approved with an empty summary when the run had none', () => {
    const iteration = planToIteration(planFromLoop({ executedCalls: [], summary: null }), 'i', '2026-01-01T00:00:00.000Z');
    expect(iteration).toMatchObject({ plan: [], summary: '', overallStatus: 'approved' });
  });
});

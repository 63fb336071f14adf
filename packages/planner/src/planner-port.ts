import type { PlannerPort } from '@mana-ai/core';
import { type Planner, planFailureReason } from './planner.js';

/**
 * Core's {@link PlannerPort} over a {@link Planner}: pass it as `ports.planner` to core's
 * `createDispatcher`. A provider failure (`stopReason: 'llm-error'`) or an answer cut off at the
 * length limit (`truncated`) becomes a failed plan with its {@link planFailureReason}
 * (`llm-error: <kind>`, `llm-truncated`) and the tokens spent, never an exception.
 */
export function createPlannerPort(planner: Planner): PlannerPort {
  return {
    async plan({ mission, agent, inputs, tokensUsed24h, runId, signal }) {
      const result = await planner.planMission({
        mission,
        agent: agent ?? undefined,
        resolvedInputs: inputs,
        pretickUsage24h: tokensUsed24h,
        context: { runId, missionId: mission.id, ...(agent ? { agentId: agent.id } : {}) },
        ...(signal ? { signal } : {}),
      });
      const failure = planFailureReason(result);
      if (failure) return { ok: false, reason: failure, usage: result.usage };
      return {
        ok: true,
        calls: result.plan.steps.map((step) => ({ toolName: step.toolName, params: step.params, summary: step.summary })),
        summary: result.plan.summary,
        usage: result.usage,
        rounds: result.rounds,
      };
    },
  };
}

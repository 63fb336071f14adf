import { type MissionIteration, buildServerIteration } from '@mana-ai/core';
import type { ExecutedCall } from './reminders.js';

/** A step the planner proposes (docs/wire-contract.md#llm-requests `PlannedStep`). */
export interface PlannedStep {
  summary: string;
  toolName: string;
  params: Record<string, unknown>;
  rationale: string;
}

/** A plan: steps and the final summary (docs/wire-contract.md#llm-requests `AiPlanOutput`). */
export interface AiPlanOutput {
  steps: PlannedStep[];
  summary: string;
}

/** Turns recorded calls, in execution order, into planned steps (docs/wire-contract.md#tool-calls-on-the-wire). */
export function planStepsFromCalls(calls: readonly ExecutedCall[]): PlannedStep[] {
  return calls.map(({ call }) => ({ summary: call.name, toolName: call.name, params: call.arguments, rationale: '' }));
}

/** Builds a plan from a loop result: recorded calls become steps, the final text the summary. */
export function planFromLoop(result: { executedCalls: readonly ExecutedCall[]; summary: string | null }): AiPlanOutput {
  return { steps: planStepsFromCalls(result.executedCalls), summary: result.summary ?? '' };
}

/**
 * The iteration the runner writes back (docs/wire-contract.md#iterations-and-plan-steps), keys in wire order: step ids
 * `<iterationId>-<index>`, status `planned`, `approved` when empty, else `awaiting-review`.
 */
export function planToIteration(plan: AiPlanOutput, iterationId: string, nowIso: string): MissionIteration {
  return buildServerIteration({ iterationId, calls: plan.steps, summary: plan.summary, startedAt: nowIso, finishedAt: nowIso });
}

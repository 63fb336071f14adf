import type { IsoTimestamp, MissionIteration, PlanStep } from './domain.js';

/** A tool call the planner recorded, before it becomes a plan step. */
export interface PlannedCall {
  toolName: string;
  params: Record<string, unknown>;
  /** The step's summary; defaults to the tool name. */
  summary?: string;
}

/**
 * Builds the iteration the runner writes back (docs/wire-contract.md#iterations-and-plan-steps): steps `<iterationId>-<index>` with
 * status `planned`, `overallStatus` `approved` for an empty plan and `awaiting-review` otherwise,
 * `source: 'server'`, keys in wire order.
 */
export function buildServerIteration(input: {
  iterationId: string;
  calls: readonly PlannedCall[];
  summary: string;
  startedAt: IsoTimestamp;
  finishedAt: IsoTimestamp;
}): MissionIteration {
  const plan: PlanStep[] = input.calls.map((call, index) => ({
    id: `${input.iterationId}-${index}`,
    summary: call.summary ?? call.toolName,
    intent: { kind: 'toolCall', toolName: call.toolName, params: call.params },
    status: 'planned',
  }));
  return {
    id: input.iterationId,
    startedAt: input.startedAt,
    finishedAt: input.finishedAt,
    plan,
    summary: input.summary,
    overallStatus: plan.length === 0 ? 'approved' : 'awaiting-review',
    source: 'server',
  };
}

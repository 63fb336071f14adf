import type { IsoTimestamp, MissionIteration, PlanStep } from './domain.js';
import { sanitizeJson, sanitizeText } from './text.js';

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
 * `source: 'server'`, keys in wire order. Every string in it (summaries, tool names, params and their
 * keys) passes through {@link sanitizeText}: an LLM's NUL or lone surrogate never fails the write-back.
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
    summary: sanitizeText(call.summary ?? call.toolName),
    intent: { kind: 'toolCall', toolName: sanitizeText(call.toolName), params: sanitizeJson(call.params) as Record<string, unknown> },
    status: 'planned',
  }));
  return {
    id: input.iterationId,
    startedAt: input.startedAt,
    finishedAt: input.finishedAt,
    plan,
    summary: sanitizeText(input.summary),
    overallStatus: plan.length === 0 ? 'approved' : 'awaiting-review',
    source: 'server',
  };
}

import type { AiPolicy, PolicyDecision } from '@mana-ai/core';

/** The decision an agent policy takes for a tool when nothing in the policy matches. */
export const FALLBACK_POLICY_DECISION: PolicyDecision = 'propose';

/**
 * Resolves the policy decision of an AI actor for a tool: `tools[name]`, else
 * `defaultsByModule[module]`, else `defaultForAi` (the first truthy value wins, docs/wire-contract.md#missions-and-agents).
 */
export function resolveToolPolicy(tool: { readonly name: string; readonly module: string }, policy: AiPolicy | undefined): PolicyDecision {
  if (!policy) return FALLBACK_POLICY_DECISION;
  return policy.tools?.[tool.name] || policy.defaultsByModule?.[tool.module] || policy.defaultForAi || FALLBACK_POLICY_DECISION;
}

/** Keeps the tools whose resolved decision is not `deny`, in their original order (docs/wire-contract.md#tool-calls-on-the-wire). */
export function filterToolsByPolicy<Tool extends { readonly name: string; readonly module: string }>(
  tools: readonly Tool[],
  policy: AiPolicy | undefined,
): Tool[] {
  if (!policy) return [...tools];
  return tools.filter((tool) => resolveToolPolicy(tool, policy) !== 'deny');
}

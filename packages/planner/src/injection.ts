/** What the planner does with tool calls whose arguments carry an injection marker. */
export type PolicyMode = 'off' | 'log-only' | 'enforce';

/** The policy modes, in a checkable form. */
export const POLICY_MODES: readonly PolicyMode[] = ['off', 'log-only', 'enforce'];

/** Strings shorter than this are not scanned. */
export const INJECTION_MIN_LENGTH = 16;

/** Patterns of prompt-injection attempts, tested in order (docs/wire-contract.md#tool-calls-on-the-wire). */
export const INJECTION_PATTERNS: readonly RegExp[] = [
  /ignore (all |the )?previous (instructions|messages)/i,
  /you are now .{0,40}(assistant|gpt|claude|gemini)/i,
  /<\s*system\b/i,
  /\{\{.+\}\}/,
  /```\s*system/i,
];

/**
 * Walks every string in `value` (arrays element-wise, objects by value) depth first and returns
 * the `source` of the first pattern matched by a string of at least 16 characters, or `null`.
 */
export function detectInjectionMarker(value: unknown): string | null {
  if (typeof value === 'string') {
    if (value.length < INJECTION_MIN_LENGTH) return null;
    for (const pattern of INJECTION_PATTERNS) if (pattern.test(value)) return pattern.source;
    return null;
  }
  if (Array.isArray(value)) {
    for (const item of value) {
      const marker = detectInjectionMarker(item);
      if (marker) return marker;
    }
    return null;
  }
  if (typeof value === 'object' && value !== null) return detectInjectionMarker(Object.values(value));
  return null;
}

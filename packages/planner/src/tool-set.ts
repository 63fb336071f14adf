import type { ToolSchema } from './catalog-types.js';
import { type FunctionToolSpec, toFunctionSchema } from './function-schema.js';
import { type SchemaValidator, type SchemaViolation, compileJsonSchema } from './json-schema.js';

/** Why a tool call was refused (`arguments-too-large`: past the loop's `maxToolArgumentBytes`). */
export type ToolCallRejectReason = 'unknown-tool' | 'invalid-arguments' | 'injection-marker' | 'arguments-too-large';

/** The outcome of checking one tool call against a {@link ToolSet}. */
export type ToolCallCheck =
  | { readonly ok: true; readonly tool: ToolSchema }
  | { readonly ok: false; readonly reason: ToolCallRejectReason; readonly message: string };

/**
 * The tools offered in one planner run: their function specs for the provider and a validator
 * for the calls the model makes. Each tool's validator is compiled once per set, on first use.
 */
export interface ToolSet {
  /** The tools, in offer order. */
  readonly tools: readonly ToolSchema[];
  /** Names of the tools, for membership checks. */
  readonly names: ReadonlySet<string>;
  /** The tools in OpenAI function-calling format, in offer order. */
  readonly functionSchemas: readonly FunctionToolSpec[];
  /** Checks a call's name against the offered tools and its arguments against the tool's schema. */
  check(name: string, args: unknown): ToolCallCheck;
}

const MAX_REPORTED_ERRORS = 5;

interface ToolEntry {
  tool: ToolSchema;
  index: number;
  validate?: SchemaValidator;
}

/**
 * Builds a {@link ToolSet}. Arguments are validated against the offered function schema with
 * `additionalProperties: false` added, so a misspelt parameter is reported to the model instead
 * of being dropped silently by the client that executes the step.
 */
export function createToolSet(tools: readonly ToolSchema[]): ToolSet {
  const functionSchemas = tools.map(toFunctionSchema);
  const byName = new Map(tools.map((tool, index) => [tool.name, { tool, index } as ToolEntry]));
  const names = new Set(byName.keys());
  return {
    tools,
    names,
    functionSchemas,
    check(name, args) {
      const entry = byName.get(name);
      if (!entry) {
        return { ok: false, reason: 'unknown-tool', message: `Unknown tool "${name}": only the offered tools can be called.` };
      }
      if (typeof args !== 'object' || args === null || Array.isArray(args)) {
        return { ok: false, reason: 'invalid-arguments', message: `Arguments of "${name}" must be a JSON object.` };
      }
      // Compiled on first use and kept: a run usually calls a handful of the offered tools.
      entry.validate ??= compileJsonSchema({ ...functionSchemas[entry.index]!.function.parameters, additionalProperties: false });
      const violations = entry.validate(args);
      if (violations.length === 0) return { ok: true, tool: entry.tool };
      return { ok: false, reason: 'invalid-arguments', message: `Invalid arguments for "${name}": ${describeViolations(violations)}.` };
    },
  };
}

function describeViolations(violations: readonly SchemaViolation[]): string {
  return violations
    .slice(0, MAX_REPORTED_ERRORS)
    .map((violation) => {
      if (violation.path === '' && violation.keyword === 'additionalProperties') return `unknown parameter "${violation.property}"`;
      if (violation.path === '' && violation.keyword === 'required') return `missing required parameter "${violation.property}"`;
      return `${violation.path === '' ? 'arguments' : violation.path.slice(1).replaceAll('/', '.')} ${violation.message}`;
    })
    .join('; ');
}

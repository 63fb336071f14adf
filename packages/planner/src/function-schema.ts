import { PARAMETER_TYPES, type ToolSchema } from './catalog-types.js';
import { PlannerError } from './errors.js';

/** The JSON schema of one function parameter as sent to the provider. */
export interface FunctionParameterSchema {
  type: string;
  description: string;
  enum?: string[];
  items?: Record<string, unknown>;
  /** On `object` parameters: `{}`, the catalog names no fields (free-form, e.g. a block's props). */
  properties?: Record<string, never>;
  /** On `object` parameters: `true`, any field is allowed. */
  additionalProperties?: true;
}

/** The JSON schema of a function's arguments object. */
export interface FunctionParametersSchema {
  type: 'object';
  properties: Record<string, FunctionParameterSchema>;
  required: string[];
}

/** One tool in OpenAI function-calling format (docs/wire-contract.md#tool-calls-on-the-wire). */
export interface FunctionToolSpec {
  type: 'function';
  function: { name: string; description: string; parameters: FunctionParametersSchema };
}

/**
 * Converts a tool to OpenAI function-calling format: properties and `required` in catalog order,
 * `enum` only when non-empty, `items` on every array and `properties: {}` with
 * `additionalProperties: true` on every object, so strict providers accept them (the original's B26).
 * Throws `PLANNER_UNSUPPORTED_PARAMETER_TYPE` for a type outside {@link PARAMETER_TYPES}.
 */
export function toFunctionSchema(tool: ToolSchema): FunctionToolSpec {
  const properties: Record<string, FunctionParameterSchema> = {};
  const required: string[] = [];
  for (const parameter of tool.parameters) {
    if (!PARAMETER_TYPES.includes(parameter.type)) {
      throw new PlannerError(
        'PLANNER_UNSUPPORTED_PARAMETER_TYPE',
        `Unsupported parameter type in tool catalog: "${String(parameter.type)}"`,
        { details: { tool: tool.name, parameter: parameter.name } },
      );
    }
    const property: FunctionParameterSchema = { type: parameter.type, description: parameter.description };
    if (parameter.enum && parameter.enum.length > 0) property.enum = [...parameter.enum];
    if (parameter.type === 'array') property.items = { ...(parameter.items ?? { type: 'string' }) };
    if (parameter.type === 'object') {
      property.properties = {};
      property.additionalProperties = true;
    }
    properties[parameter.name] = property;
    if (parameter.required) required.push(parameter.name);
  }
  return {
    type: 'function',
    function: { name: tool.name, description: tool.description, parameters: { type: 'object', properties, required } },
  };
}

/** Converts tools to function specs, preserving order. */
export function toolsToFunctionSchemas(tools: readonly ToolSchema[]): FunctionToolSpec[] {
  return tools.map(toFunctionSchema);
}

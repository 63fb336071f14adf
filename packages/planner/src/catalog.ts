import type { AiPolicy, PolicyDecision } from '@mana-ai/core';
import { CATALOG_DATA } from './catalog-data.js';
import { DEFAULT_ARRAY_ITEMS, PARAMETER_TEXTS, TOOL_TEXTS } from './catalog-texts.js';
import { type CatalogToolData, type ItemsSchema, PARAMETER_TYPES, type PlannerLocale, type ToolParameter, type ToolSchema } from './catalog-types.js';
import { PlannerError } from './errors.js';
import { compileJsonSchema } from './json-schema.js';
import { filterToolsByPolicy } from './policy.js';
import { type ToolSet, createToolSet } from './tool-set.js';

/** Options of {@link createToolCatalog}. */
export interface ToolCatalogOptions {
  /** Language of the tool descriptions (default `de`: mana's users write German). */
  locale?: PlannerLocale;
  /**
   * A catalog JSON to use instead of the built-in one (for example the webapp's own export):
   * `{ tools: [...] }` or a bare array, tools shaped like `contract/tool-catalog.json`, with
   * optional `description` strings on tools and parameters and optional `items` on arrays.
   */
  source?: unknown;
  /** How many compiled tool sets to keep (one per distinct agent policy outcome; default 64). */
  toolSetCacheSize?: number;
}

/** The tool catalog: every tool, the server (propose) tools, policy filtering, compiled tool sets. */
export interface ToolCatalog {
  /** Locale of the descriptions. */
  readonly locale: PlannerLocale;
  /** Every tool in catalog order. */
  readonly tools: readonly ToolSchema[];
  /** The tools the server may offer: those whose default policy is `propose` (docs/wire-contract.md#tool-calls-on-the-wire). */
  readonly serverTools: readonly ToolSchema[];
  /** A tool by name. */
  get(name: string): ToolSchema | undefined;
  /** The server tools an agent may use: `deny` under its policy removes a tool (docs/wire-contract.md#tool-calls-on-the-wire). */
  toolsForPolicy(policy: AiPolicy | undefined): ToolSchema[];
  /** A compiled {@link ToolSet} of the server tools allowed by `policy`, cached per outcome. */
  toolSetForPolicy(policy: AiPolicy | undefined): ToolSet;
}

const DEFAULT_TOOL_SET_CACHE_SIZE = 64;

const CATALOG_JSON_SCHEMA = {
  type: 'array',
  items: {
    type: 'object',
    required: ['name', 'module', 'defaultPolicy', 'parameters'],
    properties: {
      name: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,64}$' },
      module: { type: 'string', minLength: 1 },
      description: { type: 'string' },
      defaultPolicy: { enum: ['auto', 'propose', 'deny'] },
      parameters: {
        type: 'array',
        items: {
          type: 'object',
          required: ['name', 'type', 'required'],
          properties: {
            name: { type: 'string', minLength: 1 },
            type: { type: 'string' },
            required: { type: 'boolean' },
            description: { type: 'string' },
            enum: { type: 'array', items: { type: 'string' } },
            items: { type: 'object' },
          },
        },
      },
    },
  },
} as const;

const validateCatalogShape = compileJsonSchema(CATALOG_JSON_SCHEMA);

/** A tool of an external catalog after shape validation. */
interface ExternalTool extends CatalogToolData {
  readonly description?: string;
  readonly parameters: readonly (CatalogToolData['parameters'][number] & { description?: string; items?: ItemsSchema })[];
}

/**
 * Validates an external catalog JSON and returns its tools. Throws `PLANNER_INVALID_CATALOG`
 * (with the first problems in `details.errors`) for a bad shape or duplicate names, and
 * `PLANNER_UNSUPPORTED_PARAMETER_TYPE` for a parameter type outside JSON Schema's basic types.
 */
export function parseToolCatalog(source: unknown): readonly ExternalTool[] {
  const tools = Array.isArray(source) ? source : (source as { tools?: unknown } | null)?.tools;
  const violations = validateCatalogShape(tools);
  if (violations.length > 0) {
    const errors = violations.slice(0, 10).map((violation) => `tools${violation.path} ${violation.message}`);
    throw new PlannerError('PLANNER_INVALID_CATALOG', `invalid tool catalog: ${errors[0] ?? 'expected { tools: [...] }'}`, {
      details: { errors },
    });
  }
  const external = tools as unknown as ExternalTool[];
  const seen = new Set<string>();
  for (const tool of external) {
    if (seen.has(tool.name)) {
      throw new PlannerError('PLANNER_INVALID_CATALOG', `invalid tool catalog: duplicate tool "${tool.name}"`, {
        details: { errors: [`duplicate tool "${tool.name}"`] },
      });
    }
    seen.add(tool.name);
    for (const parameter of tool.parameters) {
      if (!(PARAMETER_TYPES as readonly string[]).includes(parameter.type)) {
        throw new PlannerError('PLANNER_UNSUPPORTED_PARAMETER_TYPE', `Unsupported parameter type in tool catalog: "${parameter.type}"`, {
          details: { tool: tool.name, parameter: parameter.name },
        });
      }
      // An element schema the validator cannot enforce is refused now, not on the first call.
      if (parameter.items !== undefined) compileJsonSchema(parameter.items, `${tool.name}.${parameter.name}.items`);
    }
  }
  return external;
}

/** Adds descriptions (given, else built-in, else the name) and array `items` to catalog data. */
function describeTool(tool: ExternalTool, locale: PlannerLocale): ToolSchema {
  const texts = TOOL_TEXTS[tool.name];
  return {
    name: tool.name,
    module: tool.module,
    description: tool.description ?? texts?.description[locale] ?? tool.name,
    defaultPolicy: tool.defaultPolicy as PolicyDecision,
    parameters: tool.parameters.map((parameter): ToolParameter => {
      const description =
        parameter.description ?? texts?.parameters?.[parameter.name]?.[locale] ?? PARAMETER_TEXTS[parameter.name]?.[locale] ?? parameter.name;
      const described: ToolParameter = {
        name: parameter.name,
        type: parameter.type,
        required: parameter.required,
        description,
        ...(parameter.enum ? { enum: [...parameter.enum] } : {}),
      };
      if (parameter.type !== 'array') return described;
      return { ...described, items: parameter.items ?? texts?.items?.[parameter.name] ?? DEFAULT_ARRAY_ITEMS };
    }),
  };
}

/** Creates the tool catalog from the built-in data (or `options.source`) in the chosen locale. */
export function createToolCatalog(options: ToolCatalogOptions = {}): ToolCatalog {
  const locale = options.locale ?? 'de';
  if (locale !== 'de' && locale !== 'en') {
    throw new PlannerError('PLANNER_INVALID_OPTIONS', `locale must be de or en, got "${String(locale)}"`);
  }
  const data: readonly ExternalTool[] = options.source === undefined ? CATALOG_DATA : parseToolCatalog(options.source);
  const tools = Object.freeze(data.map((tool) => describeTool(tool, locale)));
  const byName = new Map(tools.map((tool) => [tool.name, tool]));
  const serverTools = Object.freeze(tools.filter((tool) => tool.defaultPolicy === 'propose'));
  const cacheSize = options.toolSetCacheSize ?? DEFAULT_TOOL_SET_CACHE_SIZE;
  const toolSets = new Map<string, ToolSet>();

  const toolsForPolicy = (policy: AiPolicy | undefined): ToolSchema[] => filterToolsByPolicy(serverTools, policy);
  return {
    locale,
    tools,
    serverTools,
    get: (name) => byName.get(name),
    toolsForPolicy,
    toolSetForPolicy(policy) {
      const allowed = toolsForPolicy(policy);
      const key = allowed.map((tool) => tool.name).join(',');
      let toolSet = toolSets.get(key);
      if (toolSet) {
        toolSets.delete(key);
      } else {
        toolSet = createToolSet(allowed);
        if (toolSets.size >= cacheSize) toolSets.delete(toolSets.keys().next().value as string);
      }
      toolSets.set(key, toolSet);
      return toolSet;
    },
  };
}

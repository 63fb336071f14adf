import { PlannerError } from './errors.js';

/**
 * A JSON-schema object of the subset the planner validates: `type`, `enum`, `const`, `properties`,
 * `required`, `additionalProperties`, `items`, `minLength`, `maxLength`, `pattern`, `minimum`,
 * `maximum`, `minItems`, `maxItems`, and the annotations `description`, `title`, `default`, `examples`.
 */
export type JsonSchema = Readonly<Record<string, unknown>>;

/** One reason why a value does not match a schema. */
export interface SchemaViolation {
  /** JSON pointer of the offending value (`''` for the value itself, `/lines/0/quantity` below it). */
  readonly path: string;
  /** The schema keyword that failed. */
  readonly keyword: string;
  /** What is wrong, e.g. `must be number`; names no value, only the schema's own words. */
  readonly message: string;
  /** The property a `required` or `additionalProperties` violation is about. */
  readonly property?: string;
}

/** Checks a value against a compiled schema; an empty list means the value matches. */
export type SchemaValidator = (value: unknown) => SchemaViolation[];

/** The keywords {@link compileJsonSchema} understands; any other keyword is refused. */
export const SUPPORTED_SCHEMA_KEYWORDS: readonly string[] = [
  'type',
  'enum',
  'const',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'minLength',
  'maxLength',
  'pattern',
  'minimum',
  'maximum',
  'minItems',
  'maxItems',
  'description',
  'title',
  'default',
  'examples',
];

const KEYWORDS = new Set(SUPPORTED_SCHEMA_KEYWORDS);
const JSON_TYPES = new Set(['string', 'number', 'integer', 'boolean', 'array', 'object', 'null']);

type Check = (value: unknown, path: string, out: SchemaViolation[]) => void;

/**
 * Compiles a schema of the supported subset into a validator made of plain closures: no code is
 * generated at run time, so validation works under a Content-Security-Policy without
 * `'unsafe-eval'`. Throws `PLANNER_INVALID_CATALOG` for an unsupported keyword or a malformed schema,
 * so a catalog the planner cannot enforce is refused up front instead of being half-checked;
 * `where` names the schema in that error.
 */
export function compileJsonSchema(schema: unknown, where = 'schema'): SchemaValidator {
  const check = compile(schema, where);
  return (value) => {
    const violations: SchemaViolation[] = [];
    check(value, '', violations);
    return violations;
  };
}

function invalid(at: string, problem: string): PlannerError {
  return new PlannerError('PLANNER_INVALID_CATALOG', `invalid tool catalog: ${at} ${problem}`, {
    details: { errors: [`${at} ${problem}`] },
  });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasType(value: unknown, type: string): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'integer':
      return Number.isInteger(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'array':
      return Array.isArray(value);
    case 'object':
      return isPlainObject(value);
    default:
      return value === null;
  }
}

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((item, index) => jsonEqual(item, b[index]));
  if (!isPlainObject(a) || !isPlainObject(b)) return false;
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && jsonEqual(a[key], b[key]));
}

function nonNegativeInteger(schema: Record<string, unknown>, keyword: string, at: string): number | undefined {
  const limit = schema[keyword];
  if (limit === undefined) return undefined;
  if (!Number.isInteger(limit) || (limit as number) < 0) throw invalid(at, `${keyword} must be a non-negative integer`);
  return limit as number;
}

function finiteNumber(schema: Record<string, unknown>, keyword: string, at: string): number | undefined {
  const limit = schema[keyword];
  if (limit === undefined) return undefined;
  if (typeof limit !== 'number' || !Number.isFinite(limit)) throw invalid(at, `${keyword} must be a number`);
  return limit;
}

function compile(schema: unknown, at: string): Check {
  if (!isPlainObject(schema)) throw invalid(at, 'must be an object');
  for (const keyword of Object.keys(schema)) {
    if (!KEYWORDS.has(keyword)) throw invalid(at, `uses the unsupported keyword "${keyword}"`);
  }
  const typeCheck = compileType(schema, at);
  const checks = [
    compileValues(schema, at),
    compileString(schema, at),
    compileNumber(schema, at),
    compileArray(schema, at),
    compileObject(schema, at),
  ].filter((check): check is Check => check !== undefined);
  return (value, path, out) => {
    // Keywords for other types would only repeat the type mismatch.
    if (typeCheck && !typeCheck(value, path, out)) return;
    for (const check of checks) check(value, path, out);
  };
}

function compileType(schema: Record<string, unknown>, at: string) {
  if (schema.type === undefined) return undefined;
  const types = Array.isArray(schema.type) ? schema.type : [schema.type];
  if (types.length === 0 || !types.every((type) => typeof type === 'string' && JSON_TYPES.has(type))) {
    throw invalid(at, 'has a type outside the JSON types');
  }
  const message = `must be ${types.join(',')}`;
  return (value: unknown, path: string, out: SchemaViolation[]): boolean => {
    if (types.some((type) => hasType(value, type as string))) return true;
    out.push({ path, keyword: 'type', message });
    return false;
  };
}

function compileValues(schema: Record<string, unknown>, at: string): Check | undefined {
  const checks: Check[] = [];
  if (schema.enum !== undefined) {
    const allowed = schema.enum;
    if (!Array.isArray(allowed) || allowed.length === 0) throw invalid(at, 'enum must be a non-empty array');
    const message = `must be one of ${allowed.map(String).join(', ')}`;
    checks.push((value, path, out) => {
      if (!allowed.some((candidate) => jsonEqual(candidate, value))) out.push({ path, keyword: 'enum', message });
    });
  }
  if (Object.hasOwn(schema, 'const')) {
    const expected = schema.const;
    checks.push((value, path, out) => {
      if (!jsonEqual(expected, value)) out.push({ path, keyword: 'const', message: 'must be equal to the constant' });
    });
  }
  return combine(checks);
}

function compileString(schema: Record<string, unknown>, at: string): Check | undefined {
  const minLength = nonNegativeInteger(schema, 'minLength', at);
  const maxLength = nonNegativeInteger(schema, 'maxLength', at);
  let pattern: RegExp | undefined;
  if (schema.pattern !== undefined) {
    if (typeof schema.pattern !== 'string') throw invalid(at, 'pattern must be a string');
    try {
      pattern = new RegExp(schema.pattern, 'u');
    } catch {
      throw invalid(at, 'pattern is not a valid regular expression');
    }
  }
  if (minLength === undefined && maxLength === undefined && pattern === undefined) return undefined;
  return (value, path, out) => {
    if (typeof value !== 'string') return;
    // JSON Schema counts code points, not UTF-16 units.
    const length = minLength === undefined && maxLength === undefined ? 0 : [...value].length;
    if (minLength !== undefined && length < minLength) {
      out.push({ path, keyword: 'minLength', message: `must have at least ${minLength} characters` });
    }
    if (maxLength !== undefined && length > maxLength) {
      out.push({ path, keyword: 'maxLength', message: `must have at most ${maxLength} characters` });
    }
    if (pattern && !pattern.test(value)) out.push({ path, keyword: 'pattern', message: `must match pattern "${pattern.source}"` });
  };
}

function compileNumber(schema: Record<string, unknown>, at: string): Check | undefined {
  const minimum = finiteNumber(schema, 'minimum', at);
  const maximum = finiteNumber(schema, 'maximum', at);
  if (minimum === undefined && maximum === undefined) return undefined;
  return (value, path, out) => {
    if (typeof value !== 'number') return;
    if (minimum !== undefined && value < minimum) out.push({ path, keyword: 'minimum', message: `must be >= ${minimum}` });
    if (maximum !== undefined && value > maximum) out.push({ path, keyword: 'maximum', message: `must be <= ${maximum}` });
  };
}

function compileArray(schema: Record<string, unknown>, at: string): Check | undefined {
  const minItems = nonNegativeInteger(schema, 'minItems', at);
  const maxItems = nonNegativeInteger(schema, 'maxItems', at);
  const items = schema.items === undefined ? undefined : compile(schema.items, `${at}/items`);
  if (minItems === undefined && maxItems === undefined && items === undefined) return undefined;
  return (value, path, out) => {
    if (!Array.isArray(value)) return;
    if (minItems !== undefined && value.length < minItems) out.push({ path, keyword: 'minItems', message: `must have at least ${minItems} items` });
    if (maxItems !== undefined && value.length > maxItems) out.push({ path, keyword: 'maxItems', message: `must have at most ${maxItems} items` });
    if (items) {
      for (const [index, item] of value.entries()) items(item, `${path}/${index}`, out);
    }
  };
}

function compileObject(schema: Record<string, unknown>, at: string): Check | undefined {
  const { properties = {}, required = [], additionalProperties } = schema;
  if (!isPlainObject(properties)) throw invalid(at, 'properties must be an object');
  if (!Array.isArray(required) || !required.every((name) => typeof name === 'string')) {
    throw invalid(at, 'required must be an array of strings');
  }
  const propertyChecks = new Map(Object.entries(properties).map(([name, property]) => [name, compile(property, `${at}/properties/${name}`)]));
  let extra: Check | false | undefined;
  if (additionalProperties === false) extra = false;
  else if (additionalProperties !== undefined && additionalProperties !== true) {
    extra = compile(additionalProperties, `${at}/additionalProperties`);
  }
  if (propertyChecks.size === 0 && required.length === 0 && extra === undefined) return undefined;
  return (value, path, out) => {
    if (!isPlainObject(value)) return;
    for (const name of required as string[]) {
      if (!Object.hasOwn(value, name)) out.push({ path, keyword: 'required', message: `must have property "${name}"`, property: name });
    }
    for (const [name, property] of Object.entries(value)) {
      const check = propertyChecks.get(name);
      if (check) check(property, `${path}/${name}`, out);
      else if (extra === false) out.push({ path, keyword: 'additionalProperties', message: `must not have property "${name}"`, property: name });
      else if (extra) extra(property, `${path}/${name}`, out);
    }
  };
}

function combine(checks: readonly Check[]): Check | undefined {
  if (checks.length === 0) return undefined;
  return (value, path, out) => {
    for (const check of checks) check(value, path, out);
  };
}

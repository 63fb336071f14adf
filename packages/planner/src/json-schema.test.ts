import { hasErrorCode } from '@mana-ai/core';
import { Ajv } from 'ajv';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createToolCatalog } from './catalog.js';
import { toFunctionSchema } from './function-schema.js';
import { compileJsonSchema } from './json-schema.js';

const valueOfType = {
  string: fc.string(),
  number: fc.double({ noNaN: true, noDefaultInfinity: true }),
  integer: fc.integer(),
  boolean: fc.boolean(),
  array: fc.array(fc.oneof(fc.string(), fc.record({ description: fc.string(), quantity: fc.oneof(fc.integer(), fc.string()) }))),
  object: fc.dictionary(fc.string(), fc.jsonValue()),
} as const;

describe('compileJsonSchema', () => {
  it('agrees with ajv on every server tool for generated arguments', () => {
    const ajv = new Ajv({ allErrors: true, strict: true });
    for (const tool of createToolCatalog().serverTools) {
      const schema = { ...toFunctionSchema(tool).function.parameters, additionalProperties: false };
      const reference = ajv.compile(schema);
      const ours = compileJsonSchema(schema);
      const argument = fc.record(
        Object.fromEntries([
          ...tool.parameters.map((parameter) => [
            parameter.name,
            fc.oneof(parameter.enum ? fc.constantFrom(...parameter.enum) : valueOfType[parameter.type], fc.jsonValue()),
          ]),
          ['unexpected', fc.jsonValue()],
        ]),
        { requiredKeys: [] },
      );
      fc.assert(
        fc.property(argument, (args) => {
          expect(ours(args).length === 0, `${tool.name} ${JSON.stringify(args)}`).toBe(reference(args));
        }),
        { numRuns: 40 },
      );
    }
  });

  it('reports every violation with its JSON pointer when nested values are wrong', () => {
    const validate = compileJsonSchema({
      type: 'object',
      required: ['lines'],
      additionalProperties: false,
      properties: {
        lines: {
          type: 'array',
          minItems: 1,
          items: { type: 'object', required: ['quantity'], properties: { quantity: { type: 'integer', minimum: 1 } } },
        },
        code: { type: 'string', pattern: '^[A-Z]{2}$', maxLength: 2 },
        kind: { enum: ['a', 'b'] },
      },
    });
    expect(validate({ lines: [{ quantity: 2 }], code: 'DE', kind: 'a' })).toEqual([]);
    expect(validate({ lines: [{ quantity: 0 }, {}, { quantity: 1.5 }], code: 'd€x', kind: 'c', extra: 1 })).toEqual([
      { path: '/lines/0/quantity', keyword: 'minimum', message: 'must be >= 1' },
      { path: '/lines/1', keyword: 'required', message: 'must have property "quantity"', property: 'quantity' },
      { path: '/lines/2/quantity', keyword: 'type', message: 'must be integer' },
      { path: '/code', keyword: 'maxLength', message: 'must have at most 2 characters' },
      { path: '/code', keyword: 'pattern', message: 'must match pattern "^[A-Z]{2}$"' },
      { path: '/kind', keyword: 'enum', message: 'must be one of a, b' },
      { path: '', keyword: 'additionalProperties', message: 'must not have property "extra"', property: 'extra' },
    ]);
    expect(validate([])).toEqual([{ path: '', keyword: 'type', message: 'must be object' }]);
  });

  it('throws PLANNER_INVALID_CATALOG naming the place when a schema uses a keyword it cannot enforce', () => {
    for (const [schema, problem] of [
      [{ type: 'string', format: 'email' }, 'where uses the unsupported keyword "format"'],
      [{ type: 'object', properties: { a: { oneOf: [] } } }, 'where/properties/a uses the unsupported keyword "oneOf"'],
      [{ type: 'text' }, 'where has a type outside the JSON types'],
      [{ pattern: '(' }, 'where pattern is not a valid regular expression'],
      ['string', 'where must be an object'],
    ] as const) {
      let thrown: unknown;
      try {
        compileJsonSchema(schema, 'where');
      } catch (error) {
        thrown = error;
      }
      expect(hasErrorCode(thrown, 'PLANNER_INVALID_CATALOG'), problem).toBe(true);
      expect((thrown as Error).message).toBe(`invalid tool catalog: ${problem}`);
    }
  });

  it('refuses an external catalog whose array items use an unsupported keyword', () => {
    const source = [
      { name: 'x', module: 'm', defaultPolicy: 'propose', parameters: [{ name: 'to', type: 'array', required: true, items: { type: 'string', format: 'email' } }] },
    ];
    expect(() => createToolCatalog({ source })).toThrow('invalid tool catalog: x.to.items uses the unsupported keyword "format"');
  });
});

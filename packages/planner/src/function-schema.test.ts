import { describe, expect, it } from 'vitest';
import { createToolCatalog } from './catalog.js';
import { toFunctionSchema } from './function-schema.js';

describe('toFunctionSchema', () => {
  it('gives every object parameter an empty properties map that allows any field (B26)', () => {
    const catalog = createToolCatalog({ locale: 'en' });
    const objects = catalog.tools.flatMap((tool) =>
      tool.parameters.filter((parameter) => parameter.type === 'object').map((parameter) => ({ tool, name: parameter.name })),
    );
    expect(objects.map(({ tool, name }) => `${tool.name}.${name}`)).toEqual(['add_website_block.props', 'update_website_block.patch']);
    for (const { tool, name } of objects) {
      expect(toFunctionSchema(tool).function.parameters.properties[name]).toEqual({
        type: 'object',
        description: expect.any(String),
        properties: {},
        additionalProperties: true,
      });
    }
  });

  it('accepts any object for such a parameter and still rejects a value that is not an object', () => {
    const set = createToolCatalog().toolSetForPolicy(undefined);
    expect(set.check('update_website_block', { blockId: 'b1', patch: { title: 'Neu', nested: { a: 1 } } })).toMatchObject({ ok: true });
    expect(set.check('update_website_block', { blockId: 'b1', patch: 'title=Neu' })).toMatchObject({ ok: false });
  });
});

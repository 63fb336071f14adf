import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { createToolCatalog, parseToolCatalog } from './catalog.js';
import { CATALOG_DATA } from './catalog-data.js';
import { PARAMETER_TEXTS, TOOL_TEXTS } from './catalog-texts.js';
import { hasErrorCode } from '@mana-ai/core';
import { toFunctionSchema, toolsToFunctionSchemas } from './function-schema.js';
import { filterToolsByPolicy, resolveToolPolicy } from './policy.js';

describe('createToolCatalog', () => {
  it('holds the 110 contract tools in catalog order when built in', () => {
    const catalog = createToolCatalog();
    expect(catalog.tools).toHaveLength(110);
    expect(catalog.tools.map((tool) => tool.name)).toEqual(CATALOG_DATA.map((tool) => tool.name));
    expect(catalog.tools[0]!.name).toBe('create_task');
    expect(catalog.tools[109]!.name).toBe('suggest_lasts');
    expect(new Set(catalog.tools.map((tool) => tool.module)).size).toBe(28);
    expect(catalog.tools.filter((tool) => tool.defaultPolicy === 'propose')).toHaveLength(62);
    expect(catalog.tools.filter((tool) => tool.defaultPolicy === 'auto')).toHaveLength(48);
  });

  it('keeps modules, policies, parameters and enums exactly as the contract data', () => {
    const catalog = createToolCatalog({ locale: 'en' });
    catalog.tools.forEach((tool, index) => {
      const data = CATALOG_DATA[index]!;
      expect({ name: tool.name, module: tool.module, defaultPolicy: tool.defaultPolicy }).toEqual({
        name: data.name,
        module: data.module,
        defaultPolicy: data.defaultPolicy,
      });
      expect(tool.parameters.map(({ name, type, required, enum: values }) => ({ name, type, required, ...(values ? { enum: values } : {}) }))).toEqual(
        data.parameters,
      );
    });
    expect(catalog.get('create_task')!.parameters[2]).toMatchObject({ name: 'priority', enum: ['low', 'medium', 'high'] });
  });

  it('describes every tool and parameter in German and English without falling back to names', () => {
    for (const tool of CATALOG_DATA) {
      const texts = TOOL_TEXTS[tool.name];
      expect(texts, tool.name).toBeDefined();
      expect(texts!.description.de.length).toBeGreaterThan(5);
      expect(texts!.description.en.length).toBeGreaterThan(5);
      for (const parameter of tool.parameters) {
        const text = texts!.parameters?.[parameter.name] ?? PARAMETER_TEXTS[parameter.name];
        expect(text, `${tool.name}.${parameter.name}`).toBeDefined();
      }
    }
    const german = createToolCatalog({ locale: 'de' }).get('create_task')!;
    const english = createToolCatalog({ locale: 'en' }).get('create_task')!;
    expect(german.description).toBe('Legt eine Aufgabe an.');
    expect(english.description).toBe('Create a to-do task.');
    expect(german.parameters[0]!.description).toBe('Titel');
  });

  it('offers only the propose tools as server tools, in catalog order', () => {
    const catalog = createToolCatalog();
    expect(catalog.serverTools).toHaveLength(62);
    expect(catalog.serverTools.every((tool) => tool.defaultPolicy === 'propose')).toBe(true);
    expect(catalog.serverTools.slice(0, 4).map((tool) => tool.name)).toEqual(['create_task', 'complete_task', 'complete_tasks_by_title', 'create_event']);
    expect(catalog.serverTools.at(-1)!.name).toBe('reclaim_last');
  });

  it('replaces the built-in tools when an external catalog is given', () => {
    const catalog = createToolCatalog({
      source: {
        tools: [
          { name: 'create_task', module: 'todo', defaultPolicy: 'propose', parameters: [{ name: 'title', type: 'string', required: true }] },
          {
            name: 'brew_tea',
            module: 'kitchen',
            description: 'Brews tea.',
            defaultPolicy: 'propose',
            parameters: [{ name: 'kinds', type: 'array', required: false, description: 'Teas', items: { type: 'object' } }],
          },
        ],
      },
    });
    expect(catalog.tools.map((tool) => tool.name)).toEqual(['create_task', 'brew_tea']);
    expect(catalog.get('create_task')!.description).toBe('Legt eine Aufgabe an.');
    expect(catalog.get('brew_tea')!.description).toBe('Brews tea.');
    expect(catalog.get('brew_tea')!.parameters[0]!.items).toEqual({ type: 'object' });
  });

  it('throws PLANNER_INVALID_CATALOG when the external catalog has a bad shape', () => {
    const bad = [{ tools: [{ name: 'x', module: 'm', defaultPolicy: 'sometimes', parameters: [] }] }, { tools: 'nope' }, null, { tools: [{ name: 'x' }] }];
    for (const source of bad) {
      expect(() => createToolCatalog({ source }), JSON.stringify(source)).toThrow(expect.objectContaining({ code: 'PLANNER_INVALID_CATALOG' }));
    }
    const duplicate = { name: 'x', module: 'm', defaultPolicy: 'auto', parameters: [] };
    try {
      parseToolCatalog([duplicate, duplicate]);
      expect.unreachable();
    } catch (error) {
      expect(hasErrorCode(error, 'PLANNER_INVALID_CATALOG')).toBe(true);
    }
  });

  it('throws PLANNER_UNSUPPORTED_PARAMETER_TYPE when a parameter type is not a JSON type', () => {
    const source = [{ name: 'x', module: 'm', defaultPolicy: 'auto', parameters: [{ name: 'p', type: 'fruit', required: true }] }];
    expect(() => createToolCatalog({ source })).toThrow(/Unsupported parameter type in tool catalog: "fruit"/);
  });

  it('reuses one compiled tool set for agents whose policies allow the same tools', () => {
    const catalog = createToolCatalog();
    const first = catalog.toolSetForPolicy({ tools: {}, defaultForAi: 'propose' });
    const second = catalog.toolSetForPolicy(undefined);
    const denied = catalog.toolSetForPolicy({ tools: { create_task: 'deny' }, defaultForAi: 'propose' });
    expect(second).toBe(first);
    expect(denied).not.toBe(first);
    expect(denied.names.has('create_task')).toBe(false);
  });
});

describe('resolveToolPolicy', () => {
  const tool = { name: 'create_task', module: 'todo' };

  it('takes tools[name] first, then defaultsByModule, then defaultForAi', () => {
    expect(resolveToolPolicy(tool, { tools: { create_task: 'auto' }, defaultsByModule: { todo: 'deny' }, defaultForAi: 'deny' })).toBe('auto');
    expect(resolveToolPolicy(tool, { tools: {}, defaultsByModule: { todo: 'deny' }, defaultForAi: 'auto' })).toBe('deny');
    expect(resolveToolPolicy(tool, { tools: {}, defaultForAi: 'deny' })).toBe('deny');
    expect(resolveToolPolicy(tool, undefined)).toBe('propose');
  });

  it('removes denied tools and keeps the order when filtering', () => {
    const catalog = createToolCatalog();
    const allowed = filterToolsByPolicy(catalog.serverTools, {
      tools: { create_task: 'deny', create_note: 'propose' },
      defaultsByModule: { notes: 'deny', calendar: 'deny' },
      defaultForAi: 'propose',
    });
    const names = allowed.map((tool) => tool.name);
    expect(names).not.toContain('create_task');
    expect(names).not.toContain('create_event');
    expect(names).not.toContain('update_note');
    expect(names).toContain('create_note');
    expect(names.slice(0, 3)).toEqual(['complete_task', 'complete_tasks_by_title', 'create_note']);
  });
});

describe('toFunctionSchema', () => {
  it('produces schemas for all 110 tools that compile as strict JSON Schema', () => {
    const ajv = new Ajv({ strict: true });
    const specs = toolsToFunctionSchemas(createToolCatalog().tools);
    expect(specs).toHaveLength(110);
    for (const spec of specs) {
      expect(spec.function.name).toMatch(/^[a-z_]+$/);
      expect(() => ajv.compile(spec.function.parameters), spec.function.name).not.toThrow();
    }
    expect(new Set(specs.map((spec) => spec.function.name)).size).toBe(110);
  });

  it('writes the upstream wire format with items on arrays', () => {
    const catalog = createToolCatalog();
    expect(toFunctionSchema(catalog.get('get_task_stats')!)).toEqual({
      type: 'function',
      function: { name: 'get_task_stats', description: expect.any(String), parameters: { type: 'object', properties: {}, required: [] } },
    });
    const task = toFunctionSchema(catalog.get('create_task')!).function.parameters;
    expect(Object.keys(task.properties)).toEqual(['title', 'dueDate', 'priority', 'description']);
    expect(task.required).toEqual(['title']);
    expect(task.properties.priority!.enum).toEqual(['low', 'medium', 'high']);
    expect('enum' in task.properties.title!).toBe(false);
    expect(toFunctionSchema(catalog.get('import_articles_from_urls')!).function.parameters.properties.urls!.items).toEqual({ type: 'string' });
    expect(toFunctionSchema(catalog.get('create_invoice')!).function.parameters.properties.lines!.items).toMatchObject({ type: 'object' });
  });
});

describe('createToolSet', () => {
  it('validates every server tool with a schema compiled on first use', () => {
    const toolSet = createToolCatalog().toolSetForPolicy(undefined);
    for (const tool of toolSet.tools) {
      const args = Object.fromEntries(
        tool.parameters
          .filter((parameter) => parameter.required)
          .map((parameter) => [
            parameter.name,
            parameter.enum ? parameter.enum[0] : { string: 's', number: 1, integer: 1, boolean: true, array: [], object: {} }[parameter.type],
          ]),
      );
      expect(toolSet.check(tool.name, args), tool.name).toMatchObject({ ok: true });
    }
  });
});

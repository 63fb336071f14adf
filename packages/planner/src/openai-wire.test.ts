import { describe, expect, it } from 'vitest';
import { toFunctionSchema } from './function-schema.js';
import type { LlmCompletionRequest } from './llm.js';
import { toWireBody, toWireRequest } from './openai-wire.js';

const defaults = { model: 'mana/reasoning', temperature: 0.3 };
const tools = [
  toFunctionSchema({ name: 'create_task', module: 'todo', description: 'Erstellt „eine“ Aufgabe', defaultPolicy: 'propose', parameters: [{ name: 'title', type: 'string', description: 'Titel', required: true }] }),
];

describe('toWireBody', () => {
  it('writes the same bytes as JSON.stringify of the wire request, with and without tools', () => {
    const requests: LlmCompletionRequest[] = [
      {
        messages: [
          { role: 'system', content: 'Du planst.' },
          { role: 'user', content: 'Mission "x" \u2028 \\ ok' },
          { role: 'assistant', content: null, toolCalls: [{ id: 'c1', name: 'create_task', arguments: { title: 'Milch' } }] },
          { role: 'tool', toolCallId: 'c1', content: '{"ok":true}' },
        ],
        tools,
      } as LlmCompletionRequest,
      { messages: [{ role: 'user', content: 'hi' }], tools: [], model: 'other', temperature: 0 } as LlmCompletionRequest,
    ];
    for (const request of requests) {
      expect(toWireBody(request, defaults)).toBe(JSON.stringify(toWireRequest(request, defaults)));
      // The second serialisation of the same tool list comes from the cache and is still identical.
      expect(toWireBody(request, defaults)).toBe(JSON.stringify(toWireRequest(request, defaults)));
    }
  });
});

import { describe, expect, it } from 'vitest';
import { toFunctionSchema } from './function-schema.js';
import type { LlmCompletionRequest } from './llm.js';
import { fromWireCompletion, toWireBody, toWireRequest } from './openai-wire.js';

const defaults = { model: 'mana/reasoning', temperature: 0.3 };
const tools = [
  toFunctionSchema({ name: 'create_task', module: 'todo', description: 'Erstellt „eine“ Aufgabe', defaultPolicy: 'propose', parameters: [{ name: 'title', type: 'string', description: 'Titel', required: true }] }),
];

describe('toWireBody', () => {
  it('writes the UTF-8 bytes of JSON.stringify of the wire request, with and without tools', () => {
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
    const expected = (request: LlmCompletionRequest) => new TextEncoder().encode(JSON.stringify(toWireRequest(request, defaults)));
    for (const request of requests) {
      expect(toWireBody(request, defaults)).toEqual(expected(request));
      // The second serialisation of the same tool list comes from the cache and is still identical.
      expect(toWireBody(request, defaults)).toEqual(expected(request));
    }
  });
});

describe('fromWireCompletion', () => {
  const answer = (message: Record<string, unknown>, finish_reason = 'stop') => ({ choices: [{ index: 0, message: { role: 'assistant', ...message }, finish_reason }] });

  it('keeps the text when content is an array of parts', () => {
    const parts = [{ type: 'text', text: 'Erster Teil. ' }, { type: 'image_url', image_url: { url: 'x' } }, { type: 'text', text: 'Zweiter Teil.' }];
    expect(fromWireCompletion(answer({ content: parts }))?.content).toBe('Erster Teil. Zweiter Teil.');
    expect(fromWireCompletion(answer({ content: [{ type: 'refusal', refusal: 'no' }] }))?.content).toBeNull();
  });

  it('keeps the call when the answer uses the legacy function_call field', () => {
    const completion = fromWireCompletion(answer({ content: null, function_call: { name: 'create_task', arguments: '{"title":"Milch"}' } }, 'function_call'));
    expect(completion?.toolCalls).toEqual([{ id: 'call_0', name: 'create_task', arguments: { title: 'Milch' } }]);
    expect(completion?.finishReason).toBe('tool_calls');
  });

  it('prefers tool_calls over function_call when both are present', () => {
    const completion = fromWireCompletion(
      answer({ tool_calls: [{ id: 'c1', type: 'function', function: { name: 'a', arguments: '{}' } }], function_call: { name: 'b', arguments: '{}' } }, 'tool_calls'),
    );
    expect(completion?.toolCalls.map((call) => call.name)).toEqual(['a']);
  });

  it('reports length as the finish reason and no usage when the provider sent none', () => {
    const completion = fromWireCompletion(answer({ content: 'abgeschnit' }, 'length'));
    expect(completion).toMatchObject({ content: 'abgeschnit', finishReason: 'length', usage: undefined });
  });
});

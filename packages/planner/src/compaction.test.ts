import { describe, expect, it } from 'vitest';
import { estimateTokens, parseCompactSummary, renderCompactSummary, splitForCompaction } from './compaction.js';
import type { ChatMessage } from './llm.js';

const call = (id: string) => ({ id, name: 'create_task', arguments: { title: id } });
const history: ChatMessage[] = [
  { role: 'system', content: 's' },
  { role: 'user', content: 'u' },
  { role: 'assistant', content: null, toolCalls: [call('a')] },
  { role: 'tool', toolCallId: 'a', content: 'ok' },
  { role: 'assistant', content: null, toolCalls: [call('b'), call('c'), call('d')] },
  { role: 'tool', toolCallId: 'b', content: 'ok' },
  { role: 'tool', toolCallId: 'c', content: 'ok' },
  { role: 'tool', toolCallId: 'd', content: 'ok' },
];

describe('splitForCompaction', () => {
  it('moves the tail back to the assistant call when the window would start inside its results', () => {
    const split = splitForCompaction(history, 2)!;
    expect(split.head).toHaveLength(2);
    expect(split.middle).toEqual(history.slice(2, 4));
    expect(split.tail[0]!.role).toBe('assistant');
    expect(split.tail).toHaveLength(4);
  });

  it('returns null when nothing is left to fold', () => {
    expect(splitForCompaction(history.slice(0, 4), 1)).toBeNull();
    expect(splitForCompaction(history, 10)).toBeNull();
  });
});

describe('estimateTokens', () => {
  it('grows with message content, tool-call arguments and tool specs', () => {
    const base = estimateTokens([{ role: 'user', content: 'x'.repeat(400) }]);
    expect(base).toBe(104);
    expect(estimateTokens(history)).toBeGreaterThan(estimateTokens(history.slice(0, 4)));
    const spec = { type: 'function' as const, function: { name: 'f', description: 'd', parameters: { type: 'object' as const, properties: {}, required: [] } } };
    expect(estimateTokens([{ role: 'user', content: 'x'.repeat(400) }], [spec])).toBeGreaterThan(base);
  });
});

describe('parseCompactSummary', () => {
  it('reads the four sections case-insensitively and leaves missing ones empty', () => {
    expect(parseCompactSummary('## goal\nG\n## Decisions\n- D\n## Current Progress\nP')).toEqual({
      goal: 'G',
      decisions: '- D',
      toolsCalled: '',
      currentProgress: 'P',
    });
  });

  it('renders empty sections with placeholders inside the compact-summary tags', () => {
    const text = renderCompactSummary({ goal: 'G', decisions: '', toolsCalled: '', currentProgress: '' });
    expect(text.startsWith('<compact-summary>\n## Goal\nG')).toBe(true);
    expect(text).toContain('## Decisions\n(keine)');
    expect(text).toContain('## Current Progress\nunklar\n</compact-summary>');
  });
});

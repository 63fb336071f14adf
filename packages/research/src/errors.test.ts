import { ManaAiError } from '@mana-ai/core';
import { describe, expect, it } from 'vitest';
import { ResearchError, isResearchError } from './errors.js';

describe('ResearchError', () => {
  it('derives the kind from the code and records operation and status in details', () => {
    const error = new ResearchError('RESEARCH_HTTP_STATUS', 'poll answered 502', {
      operation: 'poll',
      status: 502,
      retryable: true,
    });
    expect(error).toMatchObject({
      name: 'ResearchError',
      code: 'RESEARCH_HTTP_STATUS',
      kind: 'http-status',
      operation: 'poll',
      status: 502,
      retryable: true,
      details: { operation: 'poll', status: 502 },
    });
    expect(ManaAiError.isInstance(error)).toBe(true);
  });

  it('is recognised by isResearchError only when the code is a research code', () => {
    expect(isResearchError(new ResearchError('RESEARCH_TIMEOUT', 'x', { operation: 'submit' }))).toBe(true);
    expect(isResearchError(new ManaAiError('CORE_INVALID_ARGUMENT', 'x'))).toBe(false);
    expect(isResearchError(new Error('x'))).toBe(false);
  });
});

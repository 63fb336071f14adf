import { describe, expect, it } from 'vitest';
import { CoreError, ManaAiError, describeError, hasErrorCode } from './errors.js';

describe('ManaAiError', () => {
  it('carries code, cause, retryable and details', () => {
    const cause = new Error('socket closed');
    const error = new ManaAiError('PROJECTION_DATABASE', 'refresh failed', { cause, retryable: true, details: { rows: 3 } });
    expect(error.code).toBe('PROJECTION_DATABASE');
    expect(error.cause).toBe(cause);
    expect(error.retryable).toBe(true);
    expect(error.details).toEqual({ rows: 3 });
    expect(error).toBeInstanceOf(Error);
  });

  it('recognises errors from another copy of the package by its marker', () => {
    const foreign = Object.assign(new Error('x'), { code: 'CRYPTO_MALFORMED', [Symbol.for('@mana-ai/core/error')]: true });
    expect(ManaAiError.isInstance(foreign)).toBe(true);
    expect(ManaAiError.isInstance(new Error('plain'))).toBe(false);
    expect(ManaAiError.isInstance(null)).toBe(false);
  });

  it('matches codes and describes unknown thrown values safely', () => {
    const error = new CoreError('CORE_INVALID_CADENCE', 'bad');
    expect(hasErrorCode(error, 'CORE_INVALID_CADENCE')).toBe(true);
    expect(hasErrorCode(error, 'CORE_INVALID_TIME_ZONE')).toBe(false);
    expect(error.retryable).toBe(false);
    expect(describeError(error)).toBe('bad');
    expect(describeError({ secret: 'x' })).toBe('unknown error');
    expect(describeError('text')).toBe('text');
  });
});

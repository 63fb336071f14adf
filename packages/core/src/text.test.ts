import { describe, expect, it } from 'vitest';
import { buildServerIteration } from './iteration.js';
import { REPLACEMENT_CHARACTER, cutText, sanitizeJson, sanitizeText } from './text.js';

const HIGH = '\uD83D';
const LOW = '\uDE00';
const PAIR = `${HIGH}${LOW}`;
// What PostgreSQL refuses: a NUL anywhere, a surrogate that is not half of a pair.
const refused = (text: string) => text.includes('\u0000') || /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);

describe('sanitizeText', () => {
  it('replaces NULs and lone surrogates with U+FFFD when present, keeping pairs and other text', () => {
    expect(sanitizeText(`a\u0000b`)).toBe(`a${REPLACEMENT_CHARACTER}b`);
    expect(sanitizeText(`x${HIGH}y`)).toBe(`x${REPLACEMENT_CHARACTER}y`);
    expect(sanitizeText(`x${LOW}y`)).toBe(`x${REPLACEMENT_CHARACTER}y`);
    expect(sanitizeText(`${LOW}${HIGH}`)).toBe(`${REPLACEMENT_CHARACTER}${REPLACEMENT_CHARACTER}`);
    expect(sanitizeText(`end${HIGH}`)).toBe(`end${REPLACEMENT_CHARACTER}`);
    expect(sanitizeText(`ok ${PAIR} äöü`)).toBe(`ok ${PAIR} äöü`);
  });

  it('yields text that encodes to UTF-8 and back unchanged', () => {
    const text = sanitizeText(`${HIGH}a\u0000${LOW}${PAIR}${HIGH}`);
    expect(new TextDecoder().decode(new TextEncoder().encode(text))).toBe(text);
    expect(refused(text)).toBe(false);
  });
});

describe('sanitizeJson', () => {
  it('sanitises strings at any depth and object keys, leaving other values alone', () => {
    expect(sanitizeJson({ 'k\u0000': [`v${HIGH}`, 1, true, null, { deep: `\u0000` }] })).toEqual({
      [`k${REPLACEMENT_CHARACTER}`]: [`v${REPLACEMENT_CHARACTER}`, 1, true, null, { deep: REPLACEMENT_CHARACTER }],
    });
  });
});

describe('cutText', () => {
  it('returns undefined when the text is not longer than the bound', () => {
    expect(cutText('abc', 3)).toBeUndefined();
    expect(cutText(`${PAIR}${PAIR}`, 2)).toBeUndefined();
    expect(cutText('', 0)).toBeUndefined();
  });

  it('cuts at code points, never inside a surrogate pair, when the text is longer', () => {
    expect(cutText('abcdef', 4)).toBe('abcd');
    // 499 ASCII characters, then a pair: cutting at 500 UTF-16 units would split it.
    const text = `${'a'.repeat(499)}${PAIR}${'b'.repeat(10)}`;
    expect(cutText(text, 500)).toBe(`${'a'.repeat(499)}${PAIR}`);
    expect(cutText(`${PAIR.repeat(5)}`, 3)).toBe(PAIR.repeat(3));
    expect(cutText('abc', 0)).toBe('');
  });
});

describe('buildServerIteration', () => {
  it('writes no NUL and no lone surrogate when the planner produced them', () => {
    const iteration = buildServerIteration({
      iterationId: 'it-1',
      calls: [{ toolName: `create_task${HIGH}`, params: { 'ti\u0000tle': `Milch${LOW}\u0000`, tags: [`a${HIGH}`] }, summary: `s\u0000` }],
      summary: `Fertig${HIGH}\u0000 ${PAIR}`,
      startedAt: '2026-01-01T00:00:00.000Z',
      finishedAt: '2026-01-01T00:00:00.000Z',
    });
    expect(JSON.stringify(iteration)).not.toMatch(/\\u0000|\\ud[89a-f][0-9a-f]{2}/i);
    expect(iteration.summary).toBe(`Fertig${REPLACEMENT_CHARACTER}${REPLACEMENT_CHARACTER} ${PAIR}`);
    expect(iteration.plan[0]).toMatchObject({
      summary: `s${REPLACEMENT_CHARACTER}`,
      intent: { toolName: `create_task${REPLACEMENT_CHARACTER}`, params: { [`ti${REPLACEMENT_CHARACTER}tle`]: `Milch${REPLACEMENT_CHARACTER}${REPLACEMENT_CHARACTER}`, tags: [`a${REPLACEMENT_CHARACTER}`] } },
    });
  });
});

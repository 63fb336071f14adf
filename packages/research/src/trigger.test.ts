import { describe, expect, it } from 'vitest';
import { DEEP_RESEARCH_TRIGGER, RESEARCH_TRIGGER, isPlaintext, matchesTrigger, shortTitle } from './trigger.js';

describe('matchesTrigger', () => {
  it('matches the shallow trigger in the objective or the concept when either is plaintext', () => {
    expect(matchesTrigger(RESEARCH_TRIGGER, { objective: 'Aktuelle Preise', conceptMarkdown: '' })).toBe(true);
    expect(matchesTrigger(RESEARCH_TRIGGER, { objective: 'Plan', conceptMarkdown: 'What happened on this day' })).toBe(
      true,
    );
    expect(matchesTrigger(RESEARCH_TRIGGER, { objective: 'Einkaufsliste', conceptMarkdown: 'Milch' })).toBe(false);
  });

  it('matches the deep trigger only on its phrases', () => {
    expect(matchesTrigger(DEEP_RESEARCH_TRIGGER, { objective: 'Bitte eine tiefe Recherche', conceptMarkdown: '' })).toBe(
      true,
    );
    expect(matchesTrigger(DEEP_RESEARCH_TRIGGER, { objective: 'A deep dive into X', conceptMarkdown: '' })).toBe(true);
    expect(matchesTrigger(DEEP_RESEARCH_TRIGGER, { objective: 'research the news', conceptMarkdown: '' })).toBe(false);
  });

  it('never tests ciphertext fields when they contain trigger-like text', () => {
    const mission = { objective: 'enc:1:research deep dive', conceptMarkdown: 'enc:1:news' };
    expect(matchesTrigger(RESEARCH_TRIGGER, mission)).toBe(false);
    expect(matchesTrigger(DEEP_RESEARCH_TRIGGER, mission)).toBe(false);
  });

  it('gives the same answer on repeated calls when the trigger is global', () => {
    const global = /research/gi;
    const mission = { objective: 'research', conceptMarkdown: '' };
    expect([1, 2, 3].map(() => matchesTrigger(global, mission))).toEqual([true, true, true]);
  });
});

describe('isPlaintext', () => {
  it('accepts non-empty text and rejects ciphertext and empty values', () => {
    expect(isPlaintext('hello')).toBe(true);
    expect(isPlaintext('enc:1:abc.def')).toBe(false);
    expect(isPlaintext('')).toBe(false);
    expect(isPlaintext(undefined)).toBe(false);
  });
});

describe('shortTitle', () => {
  it('keeps the first 60 characters when the text is longer', () => {
    expect(shortTitle('x'.repeat(80))).toBe('x'.repeat(60));
    expect(shortTitle('short')).toBe('short');
  });
});

import { describe, expect, it } from 'vitest';
import { EVENTS_INPUT, JOURNAL_INPUT, KONTEXT_INPUT, NOTES_INPUT, PROFILE_INPUT, TASKS_INPUT, truncate } from './format.js';

describe('truncate', () => {
  it('cuts to max characters plus an ellipsis when the text is longer', () => {
    expect(truncate('abcdef', 3)).toBe('abc…');
    expect(truncate('abc', 3)).toBe('abc');
    expect(truncate('x'.repeat(501))).toBe(`${'x'.repeat(500)}…`);
  });

  it('never splits a surrogate pair and sends no NUL or lone surrogate when cutting at 500', () => {
    const emoji = '\u{1F600}';
    expect(truncate(`${'x'.repeat(499)}${emoji}tail`)).toBe(`${'x'.repeat(499)}${emoji}…`);
    expect(truncate(`a\u0000b\uD800c`)).toBe('a\uFFFDb\uFFFDc');
  });
});

describe('NOTES_INPUT', () => {
  it('shows string content and JSON of other content, truncated to 500', () => {
    expect(NOTES_INPUT.formatContent({ content: 'hallo' })).toBe('hallo');
    expect(NOTES_INPUT.formatContent({ content: { blocks: [1] } })).toBe('{"blocks":[1]}');
    expect(NOTES_INPUT.formatContent({})).toBe('""');
    expect(NOTES_INPUT.formatContent({ content: 'y'.repeat(600) })).toHaveLength(501);
  });
});

describe('TASKS_INPUT', () => {
  it('joins status, title, description and due date when all are present', () => {
    expect(
      TASKS_INPUT.formatContent({ status: 'open', title: 'Steuer', description: 'Belege', dueDate: '2026-05-01' }),
    ).toBe('[open] Steuer — Belege (faellig: 2026-05-01)');
  });

  it('drops empty parts and uses (ohne Titel) when fields are missing', () => {
    expect(TASKS_INPUT.formatContent({})).toBe('(ohne Titel)');
  });
});

describe('EVENTS_INPUT', () => {
  it('shows title, start and location when present', () => {
    expect(EVENTS_INPUT.formatContent({ title: 'Zahnarzt', startDate: '2026-05-02T09:00', location: 'Berlin' })).toBe(
      'Zahnarzt @ 2026-05-02T09:00 in Berlin',
    );
    expect(EVENTS_INPUT.formatContent({ startDate: 'x' })).toBe('(ohne Titel) @ x');
  });
});

describe('JOURNAL_INPUT', () => {
  it('shows string content only', () => {
    expect(JOURNAL_INPUT.formatContent({ content: 'heute' })).toBe('heute');
    expect(JOURNAL_INPUT.formatContent({ content: { a: 1 } })).toBe('');
  });
});

describe('KONTEXT_INPUT', () => {
  it('is titled Mana-Kontext and truncates at 1500', () => {
    expect(KONTEXT_INPUT.formatTitle?.({ title: 'x' })).toBe('Mana-Kontext');
    expect(KONTEXT_INPUT.formatContent({ content: 'k'.repeat(1600) })).toBe(`${'k'.repeat(1500)}…`);
  });
});

describe('PROFILE_INPUT', () => {
  it('lists filled fields in order including leisure when the profile has them', () => {
    expect(
      PROFILE_INPUT.formatContent({
        freeform: 'frei',
        leisure: '  Klettern ',
        about: 'Ich',
        interests: ['Musik', 'Code'],
        routine: '   ',
        nutrition: '',
        goals: { fit: true },
        social: null,
        other: 'ignored',
      }),
    ).toBe('Ich\n["Musik","Code"]\nKlettern\n{"fit":true}\nfrei');
  });

  it('truncates at 2000 characters', () => {
    expect(PROFILE_INPUT.formatContent({ about: 'p'.repeat(2100) })).toBe(`${'p'.repeat(2000)}…`);
  });
});

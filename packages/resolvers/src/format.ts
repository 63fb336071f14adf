import { cutText, sanitizeText } from '@mana-ai/core';

/**
 * `text` for the prompt: without NUL or lone surrogates ({@link sanitizeText}), cut to `max`
 * characters (never inside a surrogate pair) plus `…` when it is longer.
 */
export function truncate(text: string, max = 500): string {
  const clean = sanitizeText(text);
  const cut = cutText(clean, max);
  return cut === undefined ? clean : `${cut}…`;
}

/** A field value as prompt text: strings as is, `null`/`undefined` as `''`, anything else as JSON. */
export function asText(value: unknown): string {
  if (value === undefined || value === null) return '';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** How one encrypted input kind is read and shown (docs/wire-contract.md#input-records). */
export interface EncryptedInputDefinition {
  /** Sync app id the records live in (`sync_changes.app_id`). */
  appId: string;
  /** Title when the record has no string title. */
  label: string;
  /** A fixed title (takes precedence over the record's title when it returns non-empty). */
  formatTitle?: (record: Record<string, unknown>) => string;
  /** The prompt text of a decrypted record. */
  formatContent: (record: Record<string, unknown>) => string;
}

const noteContent = (record: Record<string, unknown>): string =>
  typeof record.content === 'string' ? record.content : JSON.stringify(record.content ?? '');

/** Notes (`notes`/`notes`): the content, 500 characters. */
export const NOTES_INPUT: EncryptedInputDefinition = {
  appId: 'notes',
  label: 'Notiz',
  formatContent: (record) => truncate(noteContent(record), 500),
};

/** Tasks (`todo`/`tasks`): `[status] title — description (faellig: dueDate)`, 500 characters. */
export const TASKS_INPUT: EncryptedInputDefinition = {
  appId: 'todo',
  label: 'Task',
  formatContent: (record) => {
    const status = asText(record.status);
    const description = asText(record.description);
    const dueDate = asText(record.dueDate);
    const parts = [
      status ? `[${status}]` : '',
      asText(record.title) || '(ohne Titel)',
      description ? `— ${description}` : '',
      dueDate ? `(faellig: ${dueDate})` : '',
    ];
    return truncate(parts.filter((part) => part !== '').join(' '), 500);
  },
};

/** Calendar events (`calendar`/`events`): `title @ startDate in location`, 500 characters. */
export const EVENTS_INPUT: EncryptedInputDefinition = {
  appId: 'calendar',
  label: 'Termin',
  formatContent: (record) => {
    const startDate = asText(record.startDate);
    const location = asText(record.location);
    const parts = [asText(record.title) || '(ohne Titel)', startDate ? `@ ${startDate}` : '', location ? `in ${location}` : ''];
    return truncate(parts.filter((part) => part !== '').join(' '), 500);
  },
};

/** Journal entries (`journal`/`journalEntries`): the content, 500 characters. */
export const JOURNAL_INPUT: EncryptedInputDefinition = {
  appId: 'journal',
  label: 'Journal-Eintrag',
  formatContent: (record) => truncate(typeof record.content === 'string' ? record.content : '', 500),
};

/** The kontext document (`kontext`/`kontextDoc`): titled `Mana-Kontext`, 1500 characters. */
export const KONTEXT_INPUT: EncryptedInputDefinition = {
  appId: 'kontext',
  label: 'Kontext',
  formatTitle: () => 'Mana-Kontext',
  formatContent: (record) => truncate(noteContent(record), 1500),
};

/** The profile fields shown, in the webapp's order (including `leisure`, B19, docs/wire-contract.md#the-originals-known-defects). */
export const PROFILE_FIELDS = ['about', 'interests', 'routine', 'nutrition', 'leisure', 'goals', 'social', 'freeform'] as const;

/** The user profile (`profile`/`userContext`): one line per filled field, 2000 characters. */
export const PROFILE_INPUT: EncryptedInputDefinition = {
  appId: 'profile',
  label: 'Nutzerprofil',
  formatTitle: () => 'Nutzerprofil',
  formatContent: (record) => {
    const lines: string[] = [];
    for (const field of PROFILE_FIELDS) {
      const value = record[field];
      if (!value) continue;
      if (typeof value === 'string') {
        if (value.trim() !== '') lines.push(value.trim());
      } else if (typeof value === 'object') {
        lines.push(JSON.stringify(value));
      } else {
        lines.push(String(value));
      }
    }
    return truncate(lines.join('\n'), 2000);
  },
};

/** The built-in encrypted inputs by module name (`tasks` and `todo` share one definition). */
export const ENCRYPTED_INPUTS: Readonly<Record<string, EncryptedInputDefinition>> = {
  notes: NOTES_INPUT,
  tasks: TASKS_INPUT,
  todo: TASKS_INPUT,
  calendar: EVENTS_INPUT,
  journal: JOURNAL_INPUT,
  kontext: KONTEXT_INPUT,
  profile: PROFILE_INPUT,
};

/**
 * The tables the built-in encrypted inputs read (docs/wire-contract.md#input-records): the only `table` values the runner
 * puts into metric labels, any other table a mission names is counted as `other`.
 */
export const INPUT_TABLES: readonly string[] = ['notes', 'tasks', 'events', 'journalEntries', 'kontextDoc', 'userContext'];

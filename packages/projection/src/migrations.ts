import type { Migration } from '@mana-ai/core';
import syncChanges from '../sql/0001_sync_changes.sql';
import manaAiSchema from '../sql/0002_mana_ai_schema.sql';

/** The projection's migrations, in order: the dev-only `sync_changes` log, then the `mana_ai` schema. */
export const migrations: readonly Migration[] = [
  { id: 'projection/0001_sync_changes', sql: syncChanges },
  { id: 'projection/0002_mana_ai_schema', sql: manaAiSchema },
];

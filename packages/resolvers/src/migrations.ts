import type { Migration } from '@mana-ai/core';
import decryptAudit from '../sql/0001_decrypt_audit.sql';

/** The resolvers package's migrations: the decrypt audit table under RLS. */
export const migrations: readonly Migration[] = [{ id: 'resolvers/0001_decrypt_audit', sql: decryptAudit }];

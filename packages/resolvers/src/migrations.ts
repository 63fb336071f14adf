import type { Migration } from '@mana-ai/core';
import decryptAudit from '../sql/0001_decrypt_audit.sql';
import decryptAuditForce from '../sql/0002_decrypt_audit_force.sql';

/** The resolvers package's migrations: the decrypt audit table under RLS, then that RLS forced on its owner too. */
export const migrations: readonly Migration[] = [
  { id: 'resolvers/0001_decrypt_audit', sql: decryptAudit },
  { id: 'resolvers/0002_decrypt_audit_force', sql: decryptAuditForce },
];

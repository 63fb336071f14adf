import type { Migration } from '@mana-ai/core';
import decryptAudit from '../sql/0001_decrypt_audit.sql';
import decryptAuditForce from '../sql/0002_decrypt_audit_force.sql';

/**
 * The resolvers package's migrations: the decrypt audit table under RLS, then that RLS forced on its owner too.
 * `previousChecksums`: files whose comments changed after release (citations of the original
 * service's document became docs/wire-contract.md links); a database that applied the released text
 * stays current.
 */
export const migrations: readonly Migration[] = [
  { id: 'resolvers/0001_decrypt_audit', sql: decryptAudit, previousChecksums: [{ previous: '52011e4da9f48f20fc9bb00a5d823e983d0433829dc39d256e4f372bb881329b', current: '5d2daadb551a2c534a6dcf0b97f5e6f32a14c50d2ece756900c280eb37263541' }] },
  { id: 'resolvers/0002_decrypt_audit_force', sql: decryptAuditForce },
];

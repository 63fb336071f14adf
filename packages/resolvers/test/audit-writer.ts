/** What the runner's role needs to write and read decrypt audit rows (for `TestDatabase.loginRole`). */
export const AUDIT_WRITER_PRIVILEGES = [
  'USAGE ON SCHEMA mana_ai',
  'SELECT, INSERT ON mana_ai.decrypt_audit',
  'USAGE ON SEQUENCE mana_ai.decrypt_audit_id_seq',
] as const;

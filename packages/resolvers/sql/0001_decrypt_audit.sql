-- One row per decrypt attempt (docs/wire-contract.md#decrypt-audit), readable by its user only.
CREATE SCHEMA IF NOT EXISTS mana_ai;

CREATE TABLE IF NOT EXISTS mana_ai.decrypt_audit (
  id BIGSERIAL PRIMARY KEY,
  user_id TEXT NOT NULL,
  mission_id TEXT NOT NULL,
  iteration_id TEXT,
  table_name TEXT NOT NULL,
  record_id TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'scope-violation')),
  reason TEXT,
  ts TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_decrypt_audit_mission ON mana_ai.decrypt_audit (user_id, mission_id, ts DESC);
ALTER TABLE mana_ai.decrypt_audit ENABLE ROW LEVEL SECURITY;
DO $migration$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_policies
    WHERE schemaname = 'mana_ai' AND tablename = 'decrypt_audit' AND policyname = 'decrypt_audit_user_scope'
  ) THEN
    CREATE POLICY decrypt_audit_user_scope ON mana_ai.decrypt_audit
      USING (user_id = current_setting('app.current_user_id', true));
  END IF;
END
$migration$;

-- The audit's user policy holds for the table's owner too (DESIGN §7): on the owner path that is
-- mana-sync's own login role. Writes must name the session's user. Safe to run again.
ALTER TABLE mana_ai.decrypt_audit FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS decrypt_audit_user_scope ON mana_ai.decrypt_audit;
CREATE POLICY decrypt_audit_user_scope ON mana_ai.decrypt_audit
  USING (user_id = current_setting('app.current_user_id', true))
  WITH CHECK (user_id = current_setting('app.current_user_id', true));

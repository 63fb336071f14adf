-- A claim in one statement instead of a transaction of four (issue 13: runner CPU per plan).
-- mana_ai.claim_missions is SECURITY INVOKER: it runs as the runner's role, calls the definer
-- function claim_due_missions (keys, due slots and lease ends of every user's due missions, see
-- 0006), then reads each claimed record with app.current_user_id set to that record's user, so
-- row-level security returns that user's rows and nothing else — exactly what the runner did before
-- with one statement per user. The records are read under the claim's row locks. Safe to run again.
CREATE OR REPLACE FUNCTION mana_ai.claim_missions(
  claim_owner TEXT, max_claims INTEGER, max_candidates INTEGER, lease_ms DOUBLE PRECISION)
RETURNS TABLE (user_id TEXT, mission_id TEXT, due_slot TEXT, lease_until TEXT, candidates BIGINT, healed BIGINT, record JSONB)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog
AS $fn$
#variable_conflict use_column
DECLARE
  claimed RECORD;
  scoped TEXT;
BEGIN
  FOR claimed IN
    SELECT c.user_id, c.mission_id, c.due_slot, c.lease_until, c.candidates, c.healed
    FROM mana_ai.claim_due_missions(claim_owner, max_claims, max_candidates, lease_ms) AS c
    ORDER BY c.user_id, c.mission_id
  LOOP
    IF claimed.user_id IS NOT NULL AND claimed.user_id IS DISTINCT FROM scoped THEN
      PERFORM set_config('app.current_user_id', claimed.user_id, true);
      scoped := claimed.user_id;
    END IF;
    RETURN QUERY
      SELECT claimed.user_id, claimed.mission_id, claimed.due_slot, claimed.lease_until, claimed.candidates, claimed.healed,
        (SELECT s.record FROM mana_ai.mission_snapshots s
         WHERE s.user_id = claimed.user_id AND s.mission_id = claimed.mission_id);
  END LOOP;
END
$fn$;

REVOKE ALL ON FUNCTION mana_ai.claim_missions(TEXT, INTEGER, INTEGER, DOUBLE PRECISION) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mana_ai.claim_missions(TEXT, INTEGER, INTEGER, DOUBLE PRECISION) TO mana_ai_runner;

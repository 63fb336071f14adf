-- The write-back's fast path (issue 13: PostgreSQL and runner CPU per plan). The claim already reads
-- each claimed record under its row lock; it now also returns what the write-back would otherwise
-- read again with write_back_read: the snapshot row's version after the claim's lease update, and
-- the database's time of that read. The write-back's first attempt writes with these (write_back_write
-- refuses it when anything changed since, and the runner falls back to the read). Safe to run again.

-- mana_ai.claim_mission_snapshots: mana_ai.claim_missions of 0010 (SECURITY INVOKER, each record
-- read with app.current_user_id set to its user), plus `version` (the snapshot row's xmin, read in
-- the same statement after the lease update: the version a write-back finds when nothing changed
-- since) and `read_at_ms` (the database's time of the read, epoch milliseconds truncated to the
-- millisecond). A new function rather than a new result type for claim_missions: every migration
-- stays safe to run again after the later ones, and a runner of the previous release keeps calling
-- claim_missions, which is left as it is.
CREATE OR REPLACE FUNCTION mana_ai.claim_mission_snapshots(
  claim_owner TEXT, max_claims INTEGER, max_candidates INTEGER, lease_ms DOUBLE PRECISION)
RETURNS TABLE (user_id TEXT, mission_id TEXT, due_slot TEXT, lease_until TEXT, candidates BIGINT, healed BIGINT, record JSONB,
               version TEXT, read_at_ms DOUBLE PRECISION)
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
        s.record, s.xmin::text, (extract(epoch FROM date_trunc('milliseconds', clock_timestamp())) * 1000)::float8
      FROM (SELECT 1) AS one
      LEFT JOIN mana_ai.mission_snapshots s ON s.user_id = claimed.user_id AND s.mission_id = claimed.mission_id;
  END LOOP;
END
$fn$;

REVOKE ALL ON FUNCTION mana_ai.claim_mission_snapshots(TEXT, INTEGER, INTEGER, DOUBLE PRECISION) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mana_ai.claim_mission_snapshots(TEXT, INTEGER, INTEGER, DOUBLE PRECISION) TO mana_ai_runner;

-- mana_ai.write_back_write as in 0008, plus one check: a p_stamp later than the database's now
-- (truncated to the millisecond) writes nothing and returns false. The read path's stamp is the
-- database's time of an earlier statement; the fast path's is estimated on the runner (the claim's
-- read time plus the time elapsed on its monotonic clock), and this check keeps any such estimate
-- from landing ahead of the database's clock. CREATE OR REPLACE keeps the grants of 0008.
CREATE OR REPLACE FUNCTION mana_ai.write_back_write(
  p_user_id TEXT, p_mission_id TEXT, p_version TEXT, p_seen INTEGER, p_record JSONB, p_next_run_at TEXT,
  p_data JSONB, p_field_meta JSONB, p_actor JSONB, p_owner TEXT, p_agent_id TEXT, p_tokens INTEGER, p_stamp TEXT)
RETURNS BOOLEAN
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog
AS $fn$
DECLARE
  current_version TEXT;
  applied TIMESTAMPTZ;
  agent_before TEXT;
  active_before BOOLEAN;
  due_before TIMESTAMPTZ;
  agent_after TEXT;
  active_after BOOLEAN;
  due_after TIMESTAMPTZ;
BEGIN
  IF p_stamp::timestamptz > date_trunc('milliseconds', now()) THEN
    RETURN false;
  END IF;
  PERFORM set_config('app.current_user_id', p_user_id, true);
  PERFORM pg_advisory_xact_lock(hashtextextended('mana_ai.mission' || E'\n' || p_user_id || E'\n' || p_mission_id, 0));
  SELECT s.xmin::text, s.last_applied_at, s.agent_id, s.active, s.next_run_at
  INTO current_version, applied, agent_before, active_before, due_before
  FROM mana_ai.mission_snapshots s
  WHERE s.user_id = p_user_id AND s.mission_id = p_mission_id
  FOR UPDATE;
  IF current_version IS DISTINCT FROM p_version THEN
    RETURN false;
  END IF;
  IF (SELECT count(*) FROM public.sync_changes c
      WHERE c.table_name = 'aiMissions' AND c.record_id = p_mission_id AND c.user_id = p_user_id AND c.app_id = 'ai'
        AND c.created_at > applied) <> p_seen THEN
    RETURN false;
  END IF;

  INSERT INTO public.sync_changes
    (app_id, table_name, record_id, user_id, op, data, field_meta, client_id, schema_version, actor, origin)
  VALUES
    ('ai', 'aiMissions', p_mission_id, p_user_id, 'update', p_data, p_field_meta, 'mana-ai-runner', 1, p_actor, 'agent');
  IF p_tokens > 0 THEN
    INSERT INTO mana_ai.token_usage (user_id, agent_id, mission_id, tokens_used, ts)
    VALUES (p_user_id, p_agent_id, p_mission_id, p_tokens, p_stamp::timestamptz);
  END IF;
  UPDATE mana_ai.mission_snapshots s
  SET record = p_record, next_run_at = p_next_run_at::timestamptz, updated_at = now(),
      lease_owner = CASE WHEN s.lease_owner = p_owner THEN NULL ELSE s.lease_owner END,
      lease_until = CASE WHEN s.lease_owner = p_owner THEN NULL ELSE s.lease_until END
  WHERE s.user_id = p_user_id AND s.mission_id = p_mission_id
  RETURNING s.agent_id, s.active, s.next_run_at INTO agent_after, active_after, due_after;

  -- Advancing next_run_at leaves the lane's head early, never late: claims correct such a head
  -- (claim_due_missions), so concurrent write-backs of one agent never queue on its lane.
  IF coalesce(agent_before, agent_after) IS NOT NULL AND (
       agent_before IS DISTINCT FROM agent_after OR active_before IS DISTINCT FROM active_after
       OR (active_after AND due_after IS NOT NULL AND (due_before IS NULL OR due_after < due_before))) THEN
    PERFORM mana_ai.sync_mission_lanes(jsonb_build_array(
      jsonb_build_object('user_id', p_user_id, 'agent_id', agent_before),
      jsonb_build_object('user_id', p_user_id, 'agent_id', agent_after)));
  END IF;
  RETURN true;
END
$fn$;


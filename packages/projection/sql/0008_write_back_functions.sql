-- The write-back in two statements instead of a transaction of seven (issue 13: runner CPU per
-- plan). Both functions are SECURITY INVOKER: they run as the runner's role, set
-- app.current_user_id for their own statement's transaction, and row-level security applies to
-- every row they read or write, exactly as under withUser. The last-writer-wins merge stays in the
-- runner (lww.ts): the first function reads what it merges, the second writes the result only if
-- nothing changed in between (optimistic: 'conflict' sends the runner back to the first). Safe to
-- run again.

-- What a write-back merges: the mission's snapshot record (first row: `version` is the snapshot
-- row's version, `stamp` and `stamp_ms` the database's time now, truncated to the millisecond,
-- `duplicate` whether the runner already wrote this iteration), then the mission's rows of the log
-- that the snapshot has not applied yet, oldest first (`stamp` is their created_at). No row when the
-- user has no such snapshot.
CREATE OR REPLACE FUNCTION mana_ai.write_back_read(p_user_id TEXT, p_mission_id TEXT, p_iteration_id TEXT)
RETURNS TABLE (op TEXT, data JSONB, field_meta JSONB, stamp TEXT, version TEXT, duplicate BOOLEAN, stamp_ms DOUBLE PRECISION)
LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = pg_catalog
AS $fn$
#variable_conflict use_column
DECLARE
  at TIMESTAMPTZ;
BEGIN
  PERFORM set_config('app.current_user_id', p_user_id, true);
  at := date_trunc('milliseconds', clock_timestamp());
  RETURN QUERY
    WITH snapshot AS (
      SELECT s.record, s.xmin::text AS version, s.last_applied_at
      FROM mana_ai.mission_snapshots s
      WHERE s.user_id = p_user_id AND s.mission_id = p_mission_id
    )
    SELECT r.op, r.data, r.field_meta, r.stamp, r.version, r.duplicate, r.stamp_ms
    FROM (
      SELECT NULL::text AS op, s.record AS data, NULL::jsonb AS field_meta,
             to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS stamp, s.version,
             EXISTS (
               SELECT 1 FROM public.sync_changes c
               WHERE c.user_id = p_user_id AND c.app_id = 'ai' AND c.table_name = 'aiMissions'
                 AND c.record_id = p_mission_id AND c.client_id = 'mana-ai-runner'
                 AND c.actor->>'iterationId' = p_iteration_id) AS duplicate,
             (extract(epoch FROM at) * 1000)::float8 AS stamp_ms,
             0 AS part, NULL::timestamptz AS created_at, NULL::uuid AS id
      FROM snapshot s
      UNION ALL
      SELECT c.op, c.data, c.field_meta, to_char(c.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
             NULL, NULL, NULL, 1, c.created_at, c.id
      FROM public.sync_changes c, snapshot s
      WHERE c.table_name = 'aiMissions' AND c.record_id = p_mission_id AND c.user_id = p_user_id AND c.app_id = 'ai'
        AND c.created_at > s.last_applied_at
    ) AS r
    ORDER BY r.part, r.created_at, r.id;
END
$fn$;

-- Writes one merged write-back when the snapshot is still at p_version and the log still holds
-- p_seen rows of the mission that the snapshot has not applied: then, under the mission's write
-- lock (the advisory lock every write-back of the mission takes), it appends the row (p_data,
-- p_field_meta, p_actor) to the log, stores p_record and p_next_run_at in the snapshot, ends
-- p_owner's lease, records p_tokens (when > 0) at p_stamp for agent p_agent_id, and recomputes the
-- claim lanes when the mission changed lane or activity or moved earlier. Otherwise it writes
-- nothing and returns false: the caller reads and merges again.
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

REVOKE ALL ON FUNCTION mana_ai.write_back_read(TEXT, TEXT, TEXT) FROM PUBLIC;
REVOKE ALL ON FUNCTION mana_ai.write_back_write(TEXT, TEXT, TEXT, INTEGER, JSONB, TEXT, JSONB, JSONB, JSONB, TEXT, TEXT, INTEGER, TEXT) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mana_ai.write_back_read(TEXT, TEXT, TEXT) TO mana_ai_runner;
GRANT EXECUTE ON FUNCTION mana_ai.write_back_write(TEXT, TEXT, TEXT, INTEGER, JSONB, TEXT, JSONB, JSONB, JSONB, TEXT, TEXT, INTEGER, TEXT) TO mana_ai_runner;

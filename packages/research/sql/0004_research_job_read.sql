-- A mission's research job read in one statement instead of a transaction of four (issue 13: runner
-- CPU per plan; the research stage reads it for every mission it runs while deep research is on).
-- SECURITY INVOKER: it runs as the runner's role, sets app.current_user_id for its own statement's
-- transaction, and the table's row-level security (0003) applies as under any per-user transaction.
-- Safe to run again.
CREATE OR REPLACE FUNCTION mana_ai.research_job_of(p_user_id TEXT, p_mission_id TEXT)
RETURNS TABLE (
  task_id TEXT, provider_id TEXT, submitted_at TIMESTAMPTZ, last_polled_at TIMESTAMPTZ, state TEXT,
  remote_status TEXT, failed_polls INTEGER, result JSONB, completed_at TIMESTAMPTZ)
LANGUAGE plpgsql STABLE SECURITY INVOKER SET search_path = pg_catalog
AS $fn$
#variable_conflict use_column
BEGIN
  PERFORM set_config('app.current_user_id', p_user_id, true);
  RETURN QUERY
    SELECT j.task_id, j.provider_id, j.submitted_at, j.last_polled_at, j.state, j.remote_status, j.failed_polls,
           j.result, j.completed_at
    FROM mana_ai.mission_research_jobs j
    WHERE j.user_id = p_user_id AND j.mission_id = p_mission_id
    LIMIT 1;
END
$fn$;

REVOKE ALL ON FUNCTION mana_ai.research_job_of(TEXT, TEXT) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mana_ai.research_job_of(TEXT, TEXT) TO mana_ai_runner;

-- Which missions have a research job, as keys only (issue 13: runner and PostgreSQL CPU per plan).
-- With deep research disabled an instance submits no job itself; instead of reading each mission's job
-- on every run, it reads this key set once every few seconds and reads a job (research_job_of, under
-- its user's RLS) only for a mission in it. Cross-user, so it runs as the NOLOGIN role mana_ai_feed
-- (SECURITY DEFINER), which may read the two key columns of the table and nothing else: no task id,
-- state or result leaves it (DESIGN §7). Safe to run again.

GRANT SELECT (user_id, mission_id) ON mana_ai.mission_research_jobs TO mana_ai_feed;
DROP POLICY IF EXISTS mission_research_jobs_keys ON mana_ai.mission_research_jobs;
CREATE POLICY mission_research_jobs_keys ON mana_ai.mission_research_jobs FOR SELECT TO mana_ai_feed USING (true);

-- One row: the keys of at most max_keys missions with a job row (user_ids[i], mission_ids[i]) and
-- whether there are more than max_keys of them (then the set is incomplete).
CREATE OR REPLACE FUNCTION mana_ai.research_job_keys(max_keys INTEGER)
RETURNS TABLE (user_ids TEXT[], mission_ids TEXT[], more BOOLEAN)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
AS $fn$
  WITH limited AS (
    SELECT j.user_id, j.mission_id, row_number() OVER (ORDER BY j.user_id, j.mission_id) AS n
    FROM (
      SELECT user_id, mission_id FROM mana_ai.mission_research_jobs
      ORDER BY user_id, mission_id
      LIMIT greatest(max_keys, 0) + 1
    ) j
  )
  SELECT coalesce(array_agg(user_id ORDER BY n) FILTER (WHERE n <= max_keys), '{}'),
         coalesce(array_agg(mission_id ORDER BY n) FILTER (WHERE n <= max_keys), '{}'),
         count(*) > greatest(max_keys, 0)
  FROM limited
$fn$;

DO $owner$
BEGIN
  ALTER FUNCTION mana_ai.research_job_keys(INTEGER) OWNER TO mana_ai_feed;
END
$owner$;
REVOKE ALL ON FUNCTION mana_ai.research_job_keys(INTEGER) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mana_ai.research_job_keys(INTEGER) TO mana_ai_runner;

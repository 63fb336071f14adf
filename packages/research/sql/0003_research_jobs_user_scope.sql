-- Row-level security per user (DESIGN §7): a job row, with its research answer, is read and written
-- only in a transaction whose app.current_user_id is its user. FORCE: on the owner path the table's
-- owner is mana-sync's own login role. Safe to run again.
ALTER TABLE mana_ai.mission_research_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE mana_ai.mission_research_jobs FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS mission_research_jobs_user_scope ON mana_ai.mission_research_jobs;
CREATE POLICY mission_research_jobs_user_scope ON mana_ai.mission_research_jobs
  USING (user_id = current_setting('app.current_user_id', true))
  WITH CHECK (user_id = current_setting('app.current_user_id', true));

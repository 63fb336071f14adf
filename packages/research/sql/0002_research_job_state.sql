-- Cross-tick state of deep-research jobs (DESIGN §3.9; B17 in
-- docs/wire-contract.md#the-originals-known-defects): a completed answer is
-- kept until a plan using it is written; failing polls are counted so a job can be given up.
-- ADD COLUMN IF NOT EXISTS also upgrades a table created by the original service.
ALTER TABLE mana_ai.mission_research_jobs
  ADD COLUMN IF NOT EXISTS state TEXT NOT NULL DEFAULT 'running'
    CONSTRAINT mission_research_jobs_state_check CHECK (state IN ('running', 'completed'));
ALTER TABLE mana_ai.mission_research_jobs ADD COLUMN IF NOT EXISTS remote_status TEXT NOT NULL DEFAULT 'queued';
ALTER TABLE mana_ai.mission_research_jobs ADD COLUMN IF NOT EXISTS failed_polls INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mana_ai.mission_research_jobs ADD COLUMN IF NOT EXISTS result JSONB;
ALTER TABLE mana_ai.mission_research_jobs ADD COLUMN IF NOT EXISTS completed_at TIMESTAMPTZ;
ALTER TABLE mana_ai.mission_research_jobs ADD COLUMN IF NOT EXISTS updated_at TIMESTAMPTZ NOT NULL DEFAULT now();

-- Deep-research jobs carried across ticks (docs/wire-contract.md#research-jobs).
CREATE SCHEMA IF NOT EXISTS mana_ai;

CREATE TABLE IF NOT EXISTS mana_ai.mission_research_jobs (
  user_id TEXT NOT NULL,
  mission_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  provider_id TEXT NOT NULL,
  submitted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_polled_at TIMESTAMPTZ,
  PRIMARY KEY (user_id, mission_id)
);
CREATE INDEX IF NOT EXISTS idx_mission_research_jobs_user ON mana_ai.mission_research_jobs (user_id, submitted_at DESC);

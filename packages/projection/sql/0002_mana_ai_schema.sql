-- The runner's own schema (docs/wire-contract.md#the-mana_ai-schema): mission and agent snapshots
-- and token usage.
CREATE SCHEMA IF NOT EXISTS mana_ai;

CREATE TABLE IF NOT EXISTS mana_ai.mission_snapshots (
  user_id TEXT NOT NULL,
  mission_id TEXT NOT NULL,
  record JSONB NOT NULL,
  last_applied_at TIMESTAMPTZ NOT NULL DEFAULT 'epoch',
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, mission_id)
);
CREATE INDEX IF NOT EXISTS idx_mission_snapshots_due
  ON mana_ai.mission_snapshots ((record->>'state'), (record->>'nextRunAt')) WHERE record->>'state' = 'active';
CREATE INDEX IF NOT EXISTS idx_mission_snapshots_user ON mana_ai.mission_snapshots (user_id, last_applied_at);

CREATE TABLE IF NOT EXISTS mana_ai.agent_snapshots (
  user_id TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  record JSONB NOT NULL,
  last_applied_at TIMESTAMPTZ NOT NULL DEFAULT 'epoch',
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, agent_id)
);
CREATE INDEX IF NOT EXISTS idx_agent_snapshots_user ON mana_ai.agent_snapshots (user_id, last_applied_at);
CREATE INDEX IF NOT EXISTS idx_agent_snapshots_state
  ON mana_ai.agent_snapshots ((record->>'state')) WHERE record->>'state' = 'active';

CREATE TABLE IF NOT EXISTS mana_ai.token_usage (
  id BIGSERIAL PRIMARY KEY,
  user_id TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  mission_id TEXT NOT NULL,
  tokens_used INT NOT NULL,
  ts TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_token_usage_agent_window ON mana_ai.token_usage (user_id, agent_id, ts DESC);

-- The continuous dispatcher (DESIGN §2): claims that cost O(batch) whatever the backlog, and cheap
-- wake-up signals. Every statement is safe to run again; typed columns are back-filled from the
-- stored records by the table rewrite that adds them.

-- Typed columns instead of JSON expressions, computed by PostgreSQL from the record on every write
-- (refresh and write-back need no code to keep them right).
ALTER TABLE mana_ai.mission_snapshots
  ADD COLUMN IF NOT EXISTS agent_id TEXT GENERATED ALWAYS AS (record->>'agentId') STORED;
ALTER TABLE mana_ai.mission_snapshots
  ADD COLUMN IF NOT EXISTS active BOOLEAN
  GENERATED ALWAYS AS (coalesce(record->>'state' = 'active', false) AND (record->>'deletedAt') IS NULL) STORED;
ALTER TABLE mana_ai.agent_snapshots
  ADD COLUMN IF NOT EXISTS deleted BOOLEAN GENERATED ALWAYS AS ((record->>'deletedAt') IS NOT NULL) STORED;
-- An agent's in-flight limit; NULL = unlimited. Missing or null = 1, a number = that number, a
-- numeric string = its number, anything else = unlimited (upstream's Number(value ?? 1), NaN never limits).
ALTER TABLE mana_ai.agent_snapshots
  ADD COLUMN IF NOT EXISTS max_concurrent NUMERIC GENERATED ALWAYS AS (
    CASE
      WHEN jsonb_typeof(record->'maxConcurrentMissions') IS NULL
        OR jsonb_typeof(record->'maxConcurrentMissions') = 'null' THEN 1
      WHEN jsonb_typeof(record->'maxConcurrentMissions') = 'number' THEN (record->>'maxConcurrentMissions')::numeric
      WHEN jsonb_typeof(record->'maxConcurrentMissions') = 'string'
        AND record->>'maxConcurrentMissions' ~ '^[[:space:]]*-?[0-9]+([.][0-9]+)?[[:space:]]*$'
        THEN trim(record->>'maxConcurrentMissions')::numeric
      ELSE NULL
    END) STORED;

-- One lane per (user, agent) with scheduled missions: its earliest next_run_at (leased missions
-- included, so claims and releases never write it) and the agent's limit (NULL = unlimited: no
-- limit, unknown or deleted agent). Claims walk lanes in head order, so an agent that sits at its
-- limit costs one probe however many of its missions are due, and never starves other agents.
-- Kept by mana_ai.sync_mission_lanes() in the same transaction as every snapshot write.
CREATE TABLE IF NOT EXISTS mana_ai.mission_lanes (
  user_id TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  head_at TIMESTAMPTZ,
  max_concurrent NUMERIC,
  PRIMARY KEY (user_id, agent_id)
);
CREATE INDEX IF NOT EXISTS idx_mission_lanes_head ON mana_ai.mission_lanes (head_at, user_id, agent_id)
  WHERE head_at IS NOT NULL AND (max_concurrent IS NULL OR max_concurrent >= 1);

-- Due missions without an agent (no limit) in claim order; missions of an agent in claim order
-- within their lane; leases per lane (live counts) and overall (expiry, stats). The JSON-expression
-- indexes they replace cost every write and no longer serve a query.
DROP INDEX IF EXISTS mana_ai.idx_mission_snapshots_due;
DROP INDEX IF EXISTS mana_ai.idx_mission_snapshots_next_run;
DROP INDEX IF EXISTS mana_ai.idx_mission_snapshots_leased;
CREATE INDEX IF NOT EXISTS idx_mission_snapshots_free_due ON mana_ai.mission_snapshots (next_run_at, user_id, mission_id)
  WHERE active AND agent_id IS NULL AND next_run_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_mission_snapshots_lane_due ON mana_ai.mission_snapshots (user_id, agent_id, next_run_at, mission_id)
  WHERE active AND agent_id IS NOT NULL AND next_run_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_mission_snapshots_lane_leases ON mana_ai.mission_snapshots (user_id, agent_id, lease_until)
  WHERE lease_until IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_mission_snapshots_lease_until ON mana_ai.mission_snapshots (lease_until)
  WHERE lease_until IS NOT NULL;

-- Recomputes the given lanes (a JSON array of {user_id, agent_id}). The first statement locks them
-- (creating missing ones) in one order, so concurrent writers never deadlock on lanes; the second
-- runs with a snapshot taken after those locks, so whichever writer recomputes last sees every
-- earlier writer's committed missions.
CREATE OR REPLACE FUNCTION mana_ai.sync_mission_lanes(lanes JSONB) RETURNS VOID
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog
AS $fn$
BEGIN
  INSERT INTO mana_ai.mission_lanes AS l (user_id, agent_id)
  SELECT DISTINCT k.user_id, k.agent_id FROM jsonb_to_recordset(lanes) AS k(user_id TEXT, agent_id TEXT)
  WHERE k.user_id IS NOT NULL AND k.agent_id IS NOT NULL
  ORDER BY 1, 2
  ON CONFLICT (user_id, agent_id) DO UPDATE SET head_at = l.head_at;

  UPDATE mana_ai.mission_lanes l SET
    head_at = (
      SELECT min(s.next_run_at) FROM mana_ai.mission_snapshots s
      WHERE s.user_id = l.user_id AND s.agent_id = l.agent_id AND s.active AND s.next_run_at IS NOT NULL),
    max_concurrent = (
      SELECT a.max_concurrent FROM mana_ai.agent_snapshots a
      WHERE a.user_id = l.user_id AND a.agent_id = l.agent_id AND NOT a.deleted)
  FROM (SELECT DISTINCT k.user_id, k.agent_id FROM jsonb_to_recordset(lanes) AS k(user_id TEXT, agent_id TEXT)) AS k
  WHERE l.user_id = k.user_id AND l.agent_id = k.agent_id;

  DELETE FROM mana_ai.mission_lanes l
  USING (SELECT DISTINCT k.user_id, k.agent_id FROM jsonb_to_recordset(lanes) AS k(user_id TEXT, agent_id TEXT)) AS k
  WHERE l.user_id = k.user_id AND l.agent_id = k.agent_id AND l.head_at IS NULL;
END
$fn$;

-- Emptying the snapshots (a reset, a test) empties the lanes with them.
CREATE OR REPLACE FUNCTION mana_ai.clear_mission_lanes() RETURNS TRIGGER
LANGUAGE plpgsql SET search_path = pg_catalog
AS $fn$
BEGIN
  DELETE FROM mana_ai.mission_lanes;
  RETURN NULL;
END
$fn$;
DO $truncate$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_trigger WHERE tgrelid = 'mana_ai.mission_snapshots'::regclass AND tgname = 'mission_snapshots_clear_lanes'
  ) THEN
    CREATE TRIGGER mission_snapshots_clear_lanes AFTER TRUNCATE ON mana_ai.mission_snapshots
      FOR EACH STATEMENT EXECUTE FUNCTION mana_ai.clear_mission_lanes();
  END IF;
END
$truncate$;

-- Back-fill: every lane from the snapshots as they are now.
INSERT INTO mana_ai.mission_lanes (user_id, agent_id, head_at, max_concurrent)
SELECT s.user_id, s.agent_id, min(s.next_run_at),
       (SELECT a.max_concurrent FROM mana_ai.agent_snapshots a
        WHERE a.user_id = s.user_id AND a.agent_id = s.agent_id AND NOT a.deleted)
FROM mana_ai.mission_snapshots s
WHERE s.active AND s.agent_id IS NOT NULL AND s.next_run_at IS NOT NULL
GROUP BY s.user_id, s.agent_id
ON CONFLICT (user_id, agent_id) DO UPDATE SET head_at = EXCLUDED.head_at, max_concurrent = EXCLUDED.max_concurrent;

REVOKE ALL ON FUNCTION mana_ai.sync_mission_lanes(JSONB) FROM PUBLIC;
REVOKE ALL ON FUNCTION mana_ai.clear_mission_lanes() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mana_ai.sync_mission_lanes(JSONB) TO mana_ai_runner;
GRANT SELECT, INSERT, UPDATE, DELETE ON mana_ai.mission_lanes TO mana_ai_runner;

-- The cheap probe of the feed for a runner without the change trigger: are there rows after the
-- cursor that the refresh would read now? One indexed lookup, no row leaves the function.
CREATE OR REPLACE FUNCTION mana_ai.change_feed_pending(after_created_at TIMESTAMPTZ, after_id UUID) RETURNS BOOLEAN
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
SET plan_cache_mode = force_custom_plan
AS $fn$
DECLARE
  horizon TIMESTAMPTZ := mana_ai.change_feed_horizon();
BEGIN
  RETURN EXISTS (
    SELECT 1 FROM public.sync_changes c
    WHERE c.app_id = 'ai' AND c.table_name IN ('aiMissions', 'agents')
      AND (c.created_at, c.id) > (coalesce(after_created_at, '-infinity'::timestamptz),
                                  coalesce(after_id, '00000000-0000-0000-0000-000000000000'::uuid))
      AND c.created_at < horizon);
END
$fn$;

DO $owner$
BEGIN
  ALTER FUNCTION mana_ai.change_feed_pending(TIMESTAMPTZ, UUID) OWNER TO mana_ai_feed;
END
$owner$;
REVOKE ALL ON FUNCTION mana_ai.change_feed_pending(TIMESTAMPTZ, UUID) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mana_ai.change_feed_pending(TIMESTAMPTZ, UUID) TO mana_ai_runner;

-- Wakes the dispatchers when a user's device writes a mission or an agent. The runner's own
-- write-back is left out: it updates the snapshot itself. Firing needs no rights of the writer,
-- and a trigger function cannot be called directly: EXECUTE stays with PUBLIC, so the owner of
-- sync_changes needs only USAGE on mana_ai to install the trigger (docs/database.md).
CREATE OR REPLACE FUNCTION mana_ai.notify_ai_changes() RETURNS TRIGGER
LANGUAGE plpgsql SET search_path = pg_catalog
AS $fn$
BEGIN
  PERFORM pg_notify('mana_ai_changes', '');
  RETURN NULL;
END
$fn$;

-- Needs the owner of sync_changes; when the migrating role is not, docs/database.md has the
-- statement for the owner, and the runner polls the feed instead (see the projection README).
DO $trigger$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_trigger WHERE tgrelid = 'public.sync_changes'::regclass AND tgname = 'mana_ai_notify_changes'
  ) THEN
    CREATE TRIGGER mana_ai_notify_changes AFTER INSERT ON public.sync_changes
      FOR EACH ROW
      WHEN (NEW.app_id = 'ai' AND NEW.table_name IN ('aiMissions', 'agents') AND NEW.client_id IS DISTINCT FROM 'mana-ai-runner')
      EXECUTE FUNCTION mana_ai.notify_ai_changes();
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'mana_ai: the change trigger on sync_changes needs its owner (see docs/database.md); the runner polls the feed meanwhile';
END
$trigger$;

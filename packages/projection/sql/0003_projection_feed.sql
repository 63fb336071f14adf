-- Incremental projection (DESIGN §3.2, §3.3, §3.5): parsed due time and leases on mission
-- snapshots, delete tombstones, the global feed cursor, the least-privilege roles and the one
-- cross-user read (a SECURITY DEFINER change feed). Every statement is safe to run again.

ALTER TABLE mana_ai.mission_snapshots ADD COLUMN IF NOT EXISTS next_run_at TIMESTAMPTZ;
ALTER TABLE mana_ai.mission_snapshots ADD COLUMN IF NOT EXISTS lease_owner TEXT;
ALTER TABLE mana_ai.mission_snapshots ADD COLUMN IF NOT EXISTS lease_until TIMESTAMPTZ;

-- Due = active, not deleted, next_run_at reached: a timestamptz comparison, so stamps with offsets
-- or without milliseconds (B27) order by instant, whatever the database collation.
CREATE INDEX IF NOT EXISTS idx_mission_snapshots_next_run
  ON mana_ai.mission_snapshots (next_run_at)
  WHERE record->>'state' = 'active' AND (record->>'deletedAt') IS NULL AND next_run_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_mission_snapshots_leased
  ON mana_ai.mission_snapshots (user_id, (record->>'agentId'), lease_until)
  WHERE lease_until IS NOT NULL;

-- A (table, user, record) whose log holds a delete: its rows are never replayed again (B6).
CREATE TABLE IF NOT EXISTS mana_ai.snapshot_tombstones (
  table_name TEXT NOT NULL,
  user_id TEXT NOT NULL,
  record_id TEXT NOT NULL,
  deleted_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (table_name, user_id, record_id)
);

-- The position of the refresh in the log, with full microsecond precision (B5).
CREATE TABLE IF NOT EXISTS mana_ai.projection_cursors (
  name TEXT PRIMARY KEY,
  created_at TIMESTAMPTZ NOT NULL,
  id UUID NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Roles are cluster-wide: create them once, never with BYPASSRLS or LOGIN.
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mana_ai_feed') THEN
    CREATE ROLE mana_ai_feed NOLOGIN NOBYPASSRLS;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mana_ai_runner') THEN
    CREATE ROLE mana_ai_runner NOLOGIN NOBYPASSRLS;
  END IF;
END
$roles$;

-- Seeing other sessions' transaction start times lets the feed stop before rows that are still
-- being committed; without it the horizon only covers sessions of the feed role's own.
DO $stats$
BEGIN
  IF NOT pg_has_role('mana_ai_feed', 'pg_read_all_stats', 'MEMBER') THEN
    GRANT pg_read_all_stats TO mana_ai_feed;
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'mana_ai: grant pg_read_all_stats to mana_ai_feed as a superuser (see the projection README)';
END
$stats$;

-- The feed role reads exactly the rows the runner projects, through its own RLS policy, and an
-- index serves the feed in (created_at, id) order. Both need the owner of sync_changes: when the
-- migrating role is not, the README lists the statements for the operator.
DO $sync$
BEGIN
  GRANT SELECT ON public.sync_changes TO mana_ai_feed;
  GRANT SELECT, INSERT ON public.sync_changes TO mana_ai_runner;
  IF NOT EXISTS (
    SELECT 1 FROM pg_policies
    WHERE schemaname = 'public' AND tablename = 'sync_changes' AND policyname = 'sync_changes_mana_ai_feed'
  ) THEN
    CREATE POLICY sync_changes_mana_ai_feed ON public.sync_changes FOR SELECT TO mana_ai_feed
      USING (app_id = 'ai' AND table_name IN ('aiMissions', 'agents'));
  END IF;
  CREATE INDEX IF NOT EXISTS idx_sync_changes_mana_ai_feed ON public.sync_changes (created_at, id)
    WHERE app_id = 'ai' AND table_name IN ('aiMissions', 'agents');
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'mana_ai: sync_changes grants, policy and feed index need its owner (see the projection README)';
END
$sync$;

-- Rows of transactions that are still open may later appear with an older created_at; the feed
-- never reads past the start of the oldest open transaction in this database.
CREATE OR REPLACE FUNCTION mana_ai.change_feed_horizon() RETURNS TIMESTAMPTZ
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
AS $fn$
  SELECT least(now(), (
    SELECT min(a.xact_start) FROM pg_stat_activity a
    WHERE a.datname = current_database() AND a.backend_type = 'client backend'
      AND a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL
  ))
$fn$;

-- The only cross-user read: mission and agent changes after a (created_at, id) cursor, oldest first.
-- Custom plans only: a cached generic plan cannot see how close the cursor is to the end of the log
-- and may scan the whole index instead of the new rows.
CREATE OR REPLACE FUNCTION mana_ai.change_feed(after_created_at TIMESTAMPTZ, after_id UUID, max_rows INTEGER)
RETURNS TABLE (
  id UUID, table_name TEXT, record_id TEXT, user_id TEXT, op TEXT, data JSONB, field_meta JSONB, created_at TIMESTAMPTZ
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
SET plan_cache_mode = force_custom_plan
AS $fn$
DECLARE
  horizon TIMESTAMPTZ := mana_ai.change_feed_horizon();
BEGIN
  RETURN QUERY
    SELECT c.id, c.table_name, c.record_id, c.user_id, c.op, c.data, c.field_meta, c.created_at
    FROM public.sync_changes c
    WHERE c.app_id = 'ai' AND c.table_name IN ('aiMissions', 'agents')
      AND (c.created_at, c.id) > (coalesce(after_created_at, '-infinity'::timestamptz),
                                  coalesce(after_id, '00000000-0000-0000-0000-000000000000'::uuid))
      AND c.created_at < horizon
    ORDER BY c.created_at, c.id
    LIMIT least(greatest(coalesce(max_rows, 1000), 1), 10000);
END
$fn$;

DO $owner$
BEGIN
  ALTER FUNCTION mana_ai.change_feed_horizon() OWNER TO mana_ai_feed;
  ALTER FUNCTION mana_ai.change_feed(TIMESTAMPTZ, UUID, INTEGER) OWNER TO mana_ai_feed;
END
$owner$;
REVOKE ALL ON FUNCTION mana_ai.change_feed_horizon() FROM PUBLIC;
REVOKE ALL ON FUNCTION mana_ai.change_feed(TIMESTAMPTZ, UUID, INTEGER) FROM PUBLIC;
GRANT USAGE ON SCHEMA mana_ai TO mana_ai_feed;
GRANT EXECUTE ON FUNCTION mana_ai.change_feed_horizon() TO mana_ai_feed;
GRANT EXECUTE ON FUNCTION mana_ai.change_feed(TIMESTAMPTZ, UUID, INTEGER) TO mana_ai_runner;

-- The runner works on its own schema (tables created later by other packages' migrations too).
GRANT USAGE ON SCHEMA mana_ai TO mana_ai_runner;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA mana_ai TO mana_ai_runner;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA mana_ai TO mana_ai_runner;
ALTER DEFAULT PRIVILEGES IN SCHEMA mana_ai GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO mana_ai_runner;
ALTER DEFAULT PRIVILEGES IN SCHEMA mana_ai GRANT USAGE, SELECT ON SEQUENCES TO mana_ai_runner;

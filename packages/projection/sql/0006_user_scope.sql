-- Least privilege (DESIGN §7): row-level security on the tables that hold user content, keyed on
-- app.current_user_id (withUser), and the runner's cross-user work — claims, leases, the next due
-- time, the snapshot refresh, claim lanes — through SECURITY DEFINER functions owned by the NOLOGIN
-- role mana_ai_feed, which return keys, due slots and lease times, never a record (except the
-- refresh's, which merges the change feed's rows onto the stored snapshots of those rows).
-- FORCE: the migrating role owns these tables, and on the owner path that is mana-sync's own login
-- role; its sessions scoped to one user see that user's rows only. A later migration that reads or
-- rewrites rows as that owner must set the user or run as a superuser. Safe to run again.

ALTER TABLE mana_ai.mission_snapshots ENABLE ROW LEVEL SECURITY;
ALTER TABLE mana_ai.mission_snapshots FORCE ROW LEVEL SECURITY;
ALTER TABLE mana_ai.agent_snapshots ENABLE ROW LEVEL SECURITY;
ALTER TABLE mana_ai.agent_snapshots FORCE ROW LEVEL SECURITY;
ALTER TABLE mana_ai.token_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE mana_ai.token_usage FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS mission_snapshots_user_scope ON mana_ai.mission_snapshots;
CREATE POLICY mission_snapshots_user_scope ON mana_ai.mission_snapshots
  USING (user_id = current_setting('app.current_user_id', true))
  WITH CHECK (user_id = current_setting('app.current_user_id', true));
DROP POLICY IF EXISTS agent_snapshots_user_scope ON mana_ai.agent_snapshots;
CREATE POLICY agent_snapshots_user_scope ON mana_ai.agent_snapshots
  USING (user_id = current_setting('app.current_user_id', true))
  WITH CHECK (user_id = current_setting('app.current_user_id', true));
DROP POLICY IF EXISTS token_usage_user_scope ON mana_ai.token_usage;
CREATE POLICY token_usage_user_scope ON mana_ai.token_usage
  USING (user_id = current_setting('app.current_user_id', true))
  WITH CHECK (user_id = current_setting('app.current_user_id', true));

-- The definer functions below run as mana_ai_feed: every row of the snapshot tables. Nobody logs in
-- as it, and no role inherits its rights (docs/database.md, step 4 of the owner path).
DROP POLICY IF EXISTS mission_snapshots_definer ON mana_ai.mission_snapshots;
CREATE POLICY mission_snapshots_definer ON mana_ai.mission_snapshots TO mana_ai_feed USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS agent_snapshots_definer ON mana_ai.agent_snapshots;
CREATE POLICY agent_snapshots_definer ON mana_ai.agent_snapshots TO mana_ai_feed USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON mana_ai.mission_snapshots, mana_ai.agent_snapshots, mana_ai.mission_lanes TO mana_ai_feed;
GRANT SELECT, INSERT ON mana_ai.snapshot_tombstones TO mana_ai_feed;

-- Claim lanes read the missions and the agent of each lane, whoever's they are.
ALTER FUNCTION mana_ai.sync_mission_lanes(JSONB) SECURITY DEFINER;

-- Leases up to max_claims due missions (see claimDueMissions in the projection's claims.ts for the
-- walk). Returns keys, due slots and lease ends only, plus how many candidates the walk picked and
-- how many lane heads it corrected (one row with null keys when nothing was claimed). The generic
-- plan is the same walk, planned once per connection: a custom plan per call costs more than the
-- claim, and PostgreSQL keeps choosing one on a large backlog.
CREATE OR REPLACE FUNCTION mana_ai.claim_due_missions(
  claim_owner TEXT, max_claims INTEGER, max_candidates INTEGER, lease_ms DOUBLE PRECISION)
RETURNS TABLE (user_id TEXT, mission_id TEXT, due_slot TEXT, lease_until TEXT, candidates BIGINT, healed BIGINT)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_column
BEGIN
  RETURN QUERY
    WITH free AS (
      SELECT s.user_id, s.mission_id, s.next_run_at
      FROM mana_ai.mission_snapshots s
      WHERE s.active AND s.agent_id IS NULL AND s.next_run_at IS NOT NULL AND s.next_run_at <= now()
        AND (s.lease_until IS NULL OR s.lease_until <= now())
      ORDER BY s.next_run_at, s.user_id, s.mission_id
      LIMIT max_candidates
    ),
    lanes AS (
      SELECT l.user_id, l.agent_id, c.spare
      FROM mana_ai.mission_lanes l
      CROSS JOIN LATERAL (
        SELECT CASE WHEN l.max_concurrent IS NULL THEN max_candidates
          ELSE least(max_candidates::numeric, floor(l.max_concurrent) - (
            SELECT count(*) FROM mana_ai.mission_snapshots r
            WHERE r.user_id = l.user_id AND r.agent_id = l.agent_id AND r.lease_until > now()))::int
        END AS spare
      ) c
      WHERE l.head_at <= now() AND (l.max_concurrent IS NULL OR l.max_concurrent >= 1) AND c.spare > 0
      ORDER BY l.head_at, l.user_id, l.agent_id
      LIMIT max_candidates + (
        SELECT count(*) FROM (
          SELECT DISTINCT r.user_id, r.agent_id FROM mana_ai.mission_snapshots r
          WHERE r.lease_until > now() AND r.agent_id IS NOT NULL) AS leased)
    ),
    lane_missions AS (
      SELECT m.user_id, m.mission_id, m.next_run_at, l.agent_id
      FROM lanes l
      CROSS JOIN LATERAL (
        SELECT s.user_id, s.mission_id, s.next_run_at FROM mana_ai.mission_snapshots s
        WHERE s.user_id = l.user_id AND s.agent_id = l.agent_id AND s.active
          AND s.next_run_at IS NOT NULL AND s.next_run_at <= now()
          AND (s.lease_until IS NULL OR s.lease_until <= now())
        ORDER BY s.next_run_at, s.mission_id
        LIMIT l.spare
      ) m
    ),
    -- A write-back that advances a mission leaves its lane's head early (never late): a lane walked
    -- here that yields no due mission gets its head corrected, so it is not walked again.
    healed AS (
      UPDATE mana_ai.mission_lanes h SET head_at = e.head_at
      FROM lanes l
      CROSS JOIN LATERAL (
        SELECT min(s.next_run_at) AS head_at FROM mana_ai.mission_snapshots s
        WHERE s.user_id = l.user_id AND s.agent_id = l.agent_id AND s.active AND s.next_run_at IS NOT NULL
      ) e
      WHERE h.user_id = l.user_id AND h.agent_id = l.agent_id AND h.head_at IS DISTINCT FROM e.head_at
        AND NOT EXISTS (SELECT 1 FROM lane_missions m WHERE m.user_id = l.user_id AND m.agent_id = l.agent_id)
      RETURNING h.user_id
    ),
    picked AS (
      SELECT c.user_id, c.mission_id, c.next_run_at
      FROM (SELECT user_id, mission_id, next_run_at FROM free UNION ALL SELECT user_id, mission_id, next_run_at FROM lane_missions) AS c
      ORDER BY c.next_run_at, c.user_id, c.mission_id
      LIMIT max_candidates
    ),
    locked AS (
      SELECT s.user_id, s.mission_id FROM mana_ai.mission_snapshots s
      JOIN picked p ON p.user_id = s.user_id AND p.mission_id = s.mission_id
      WHERE s.active AND s.next_run_at IS NOT NULL AND s.next_run_at <= now()
        AND (s.lease_until IS NULL OR s.lease_until <= now())
      ORDER BY p.next_run_at, p.user_id, p.mission_id
      LIMIT max_claims
      FOR UPDATE OF s SKIP LOCKED
    ),
    updated AS (
      UPDATE mana_ai.mission_snapshots s
      SET lease_owner = claim_owner, lease_until = now() + make_interval(secs => lease_ms / 1000)
      FROM locked l
      WHERE s.user_id = l.user_id AND s.mission_id = l.mission_id
      RETURNING s.user_id, s.mission_id,
        to_char(s.next_run_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS due_slot,
        to_char(s.lease_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS lease_until
    )
    SELECT u.user_id, u.mission_id, u.due_slot, u.lease_until, (SELECT count(*) FROM picked), (SELECT count(*) FROM healed)
    FROM (SELECT 1) AS one LEFT JOIN updated u ON true;
END
$fn$;

-- Ends claim_owner's leases on the given keys ({user_id, mission_id} objects), or all of its leases
-- when keys is null; returns how many ended.
CREATE OR REPLACE FUNCTION mana_ai.release_mission_leases(claim_owner TEXT, keys JSONB) RETURNS INTEGER
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog
AS $fn$
DECLARE
  released INTEGER;
BEGIN
  IF keys IS NULL THEN
    UPDATE mana_ai.mission_snapshots SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = claim_owner;
  ELSE
    UPDATE mana_ai.mission_snapshots s SET lease_owner = NULL, lease_until = NULL
    FROM jsonb_to_recordset(keys) AS k(user_id TEXT, mission_id TEXT)
    WHERE s.user_id = k.user_id AND s.mission_id = k.mission_id AND s.lease_owner = claim_owner;
  END IF;
  GET DIAGNOSTICS released = ROW_COUNT;
  RETURN released;
END
$fn$;

-- Extends claim_owner's leases on the given keys to the database's now + lease_ms; returns the keys
-- it still held. A heartbeat must not queue behind a row lock held by a stuck session: it fails
-- after the lock timeout and the next beat tries again.
CREATE OR REPLACE FUNCTION mana_ai.renew_mission_leases(claim_owner TEXT, keys JSONB, lease_ms DOUBLE PRECISION)
RETURNS TABLE (user_id TEXT, mission_id TEXT)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
SET lock_timeout = '5s'
AS $fn$
#variable_conflict use_column
BEGIN
  RETURN QUERY
    WITH renewed AS (
      UPDATE mana_ai.mission_snapshots s SET lease_until = clock_timestamp() + make_interval(secs => lease_ms / 1000)
      FROM jsonb_to_recordset(keys) AS k(user_id TEXT, mission_id TEXT)
      WHERE s.user_id = k.user_id AND s.mission_id = k.mission_id AND s.lease_owner = claim_owner
      RETURNING s.user_id, s.mission_id)
    SELECT r.user_id, r.mission_id FROM renewed r;
END
$fn$;

-- Lease counts for operators: running leases, expired leases of missions still due, the oldest such expiry.
CREATE OR REPLACE FUNCTION mana_ai.mission_lease_stats()
RETURNS TABLE (active BIGINT, expired BIGINT, oldest_expired TEXT)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
AS $fn$
  SELECT count(*) FILTER (WHERE lease_until > now()),
         count(*) FILTER (WHERE lease_until <= now() AND due),
         to_char(min(lease_until) FILTER (WHERE lease_until <= now() AND due) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
  FROM (
    SELECT lease_until, active AND next_run_at IS NOT NULL AND next_run_at <= now() AS due
    FROM mana_ai.mission_snapshots WHERE lease_until IS NOT NULL
  ) AS leased
$fn$;

-- Milliseconds until the earliest moment a mission may become claimable (see nextDueInMs in the
-- projection's signals.ts); null when nothing is scheduled.
CREATE OR REPLACE FUNCTION mana_ai.next_due_in_ms() RETURNS DOUBLE PRECISION
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
AS $fn$
  SELECT (extract(epoch FROM (least(
    (SELECT s.next_run_at FROM mana_ai.mission_snapshots s
     WHERE s.active AND s.agent_id IS NULL AND s.next_run_at IS NOT NULL
       AND (s.lease_until IS NULL OR s.lease_until <= now())
     ORDER BY s.next_run_at, s.user_id, s.mission_id LIMIT 1),
    (SELECT l.head_at FROM mana_ai.mission_lanes l
     WHERE l.head_at IS NOT NULL AND (l.max_concurrent IS NULL OR l.max_concurrent >= 1)
       AND NOT EXISTS (
         SELECT 1 FROM mana_ai.mission_snapshots r
         WHERE r.user_id = l.user_id AND r.agent_id = l.agent_id AND r.lease_until > now())
     ORDER BY l.head_at, l.user_id, l.agent_id LIMIT 1),
    (SELECT min(f.next_run_at)
     FROM (SELECT DISTINCT r.user_id, r.agent_id FROM mana_ai.mission_snapshots r
           WHERE r.lease_until > now() AND r.agent_id IS NOT NULL) AS k
     JOIN mana_ai.mission_lanes l ON l.user_id = k.user_id AND l.agent_id = k.agent_id
     CROSS JOIN LATERAL (
       SELECT s.next_run_at FROM mana_ai.mission_snapshots s
       WHERE s.user_id = l.user_id AND s.agent_id = l.agent_id AND s.active AND s.next_run_at IS NOT NULL
         AND (s.lease_until IS NULL OR s.lease_until <= now())
       ORDER BY s.next_run_at, s.mission_id LIMIT 1) AS f
     WHERE l.max_concurrent IS NULL OR floor(l.max_concurrent) > (
       SELECT count(*) FROM mana_ai.mission_snapshots r
       WHERE r.user_id = l.user_id AND r.agent_id = l.agent_id AND r.lease_until > now())),
    (SELECT min(r.lease_until) FROM mana_ai.mission_snapshots r WHERE r.lease_until > now())
  ) - now())) * 1000)::float8
$fn$;

-- The snapshot refresh, part 1: the stored snapshots and tombstones of the records the change feed
-- just returned (keys: {table_name, user_id, record_id} objects), with each row's version (xmin) and
-- what its claim lane reads (equal after a write = the lane is unchanged).
CREATE OR REPLACE FUNCTION mana_ai.refresh_stored_snapshots(keys JSONB)
RETURNS TABLE (table_name TEXT, user_id TEXT, record_id TEXT, record JSONB, version TEXT, agent_id TEXT, lane_state TEXT, tombstone BOOLEAN)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
AS $fn$
  SELECT 'aiMissions', s.user_id, s.mission_id, s.record, s.xmin::text, s.agent_id,
         json_build_array(s.agent_id, s.active, s.next_run_at)::text, false
  FROM mana_ai.mission_snapshots s
  WHERE (s.user_id, s.mission_id) IN (
    SELECT k.user_id, k.record_id FROM jsonb_to_recordset(keys) AS k(table_name TEXT, user_id TEXT, record_id TEXT)
    WHERE k.table_name = 'aiMissions')
  UNION ALL
  SELECT 'agents', a.user_id, a.agent_id, a.record, a.xmin::text, NULL, json_build_array(a.deleted, a.max_concurrent)::text, false
  FROM mana_ai.agent_snapshots a
  WHERE (a.user_id, a.agent_id) IN (
    SELECT k.user_id, k.record_id FROM jsonb_to_recordset(keys) AS k(table_name TEXT, user_id TEXT, record_id TEXT)
    WHERE k.table_name = 'agents')
  UNION ALL
  SELECT t.table_name, t.user_id, t.record_id, NULL, NULL, NULL, NULL, true
  FROM mana_ai.snapshot_tombstones t
  JOIN jsonb_to_recordset(keys) AS k(table_name TEXT, user_id TEXT, record_id TEXT)
    ON t.table_name = k.table_name AND t.user_id = k.user_id AND t.record_id = k.record_id
$fn$;

-- The snapshot refresh, part 2: writes the merged snapshots and the deletions of one batch. Missions
-- are updated only where their version is still the one read (a concurrent write-back leaves them
-- out: the caller merges those again under withUser), inserted where new; agents are upserted. Returns
-- what was written: kind 'mission' or 'agent' with the lane state after the write, 'deleted' with
-- the deleted mission's agent. Keys and lane state only, no record.
CREATE OR REPLACE FUNCTION mana_ai.refresh_write_snapshots(missions JSONB, agents JSONB, deletions JSONB)
RETURNS TABLE (kind TEXT, user_id TEXT, record_id TEXT, agent_id TEXT, lane_state TEXT)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog
AS $fn$
#variable_conflict use_column
BEGIN
  RETURN QUERY
    WITH updated AS (
      UPDATE mana_ai.mission_snapshots s SET
        record = u.record, last_applied_at = u.last_applied_at::timestamptz,
        next_run_at = u.next_run_at::timestamptz, updated_at = now()
      FROM jsonb_to_recordset(missions)
        AS u(user_id TEXT, record_id TEXT, record JSONB, last_applied_at TEXT, next_run_at TEXT, version TEXT)
      WHERE u.version IS NOT NULL AND s.user_id = u.user_id AND s.mission_id = u.record_id AND s.xmin::text = u.version
      RETURNING s.user_id, s.mission_id, s.agent_id, json_build_array(s.agent_id, s.active, s.next_run_at)::text AS lane_state)
    SELECT 'mission', w.user_id, w.mission_id, w.agent_id, w.lane_state FROM updated w;
  RETURN QUERY
    WITH inserted AS (
      INSERT INTO mana_ai.mission_snapshots (user_id, mission_id, record, last_applied_at, next_run_at, updated_at)
      SELECT u.user_id, u.record_id, u.record, u.last_applied_at::timestamptz, u.next_run_at::timestamptz, now()
      FROM jsonb_to_recordset(missions)
        AS u(user_id TEXT, record_id TEXT, record JSONB, last_applied_at TEXT, next_run_at TEXT, version TEXT)
      WHERE u.version IS NULL
      ON CONFLICT (user_id, mission_id) DO NOTHING
      RETURNING user_id, mission_id, agent_id, json_build_array(agent_id, active, next_run_at)::text AS lane_state)
    SELECT 'mission', w.user_id, w.mission_id, w.agent_id, w.lane_state FROM inserted w;
  -- Only the refresh writes agent snapshots, and it holds the lock: a plain upsert is safe.
  RETURN QUERY
    WITH written AS (
      INSERT INTO mana_ai.agent_snapshots AS a (user_id, agent_id, record, last_applied_at, updated_at)
      SELECT u.user_id, u.record_id, u.record, u.last_applied_at::timestamptz, now()
      FROM jsonb_to_recordset(agents) AS u(user_id TEXT, record_id TEXT, record JSONB, last_applied_at TEXT)
      ON CONFLICT (user_id, agent_id) DO UPDATE SET
        record = EXCLUDED.record, last_applied_at = EXCLUDED.last_applied_at, updated_at = now()
      RETURNING a.user_id, a.agent_id, json_build_array(a.deleted, a.max_concurrent)::text AS lane_state)
    SELECT 'agent', w.user_id, w.agent_id, NULL::text, w.lane_state FROM written w;
  RETURN QUERY
    WITH deleted AS (
      DELETE FROM mana_ai.mission_snapshots s
      USING jsonb_to_recordset(deletions) AS d(table_name TEXT, user_id TEXT, record_id TEXT)
      WHERE d.table_name = 'aiMissions' AND s.user_id = d.user_id AND s.mission_id = d.record_id
      RETURNING s.user_id, s.mission_id, s.agent_id)
    SELECT 'deleted', w.user_id, w.mission_id, w.agent_id, NULL::text FROM deleted w;
  DELETE FROM mana_ai.agent_snapshots s
  USING jsonb_to_recordset(deletions) AS d(table_name TEXT, user_id TEXT, record_id TEXT)
  WHERE d.table_name = 'agents' AND s.user_id = d.user_id AND s.agent_id = d.record_id;
  INSERT INTO mana_ai.snapshot_tombstones (table_name, user_id, record_id, deleted_at)
  SELECT d.table_name, d.user_id, d.record_id, d.deleted_at::timestamptz
  FROM jsonb_to_recordset(deletions) AS d(table_name TEXT, user_id TEXT, record_id TEXT, deleted_at TEXT)
  ON CONFLICT DO NOTHING;
END
$fn$;

DO $owner$
BEGIN
  ALTER FUNCTION mana_ai.sync_mission_lanes(JSONB) OWNER TO mana_ai_feed;
  ALTER FUNCTION mana_ai.claim_due_missions(TEXT, INTEGER, INTEGER, DOUBLE PRECISION) OWNER TO mana_ai_feed;
  ALTER FUNCTION mana_ai.release_mission_leases(TEXT, JSONB) OWNER TO mana_ai_feed;
  ALTER FUNCTION mana_ai.renew_mission_leases(TEXT, JSONB, DOUBLE PRECISION) OWNER TO mana_ai_feed;
  ALTER FUNCTION mana_ai.mission_lease_stats() OWNER TO mana_ai_feed;
  ALTER FUNCTION mana_ai.next_due_in_ms() OWNER TO mana_ai_feed;
  ALTER FUNCTION mana_ai.refresh_stored_snapshots(JSONB) OWNER TO mana_ai_feed;
  ALTER FUNCTION mana_ai.refresh_write_snapshots(JSONB, JSONB, JSONB) OWNER TO mana_ai_feed;
END
$owner$;
REVOKE ALL ON FUNCTION mana_ai.claim_due_missions(TEXT, INTEGER, INTEGER, DOUBLE PRECISION) FROM PUBLIC;
REVOKE ALL ON FUNCTION mana_ai.release_mission_leases(TEXT, JSONB) FROM PUBLIC;
REVOKE ALL ON FUNCTION mana_ai.renew_mission_leases(TEXT, JSONB, DOUBLE PRECISION) FROM PUBLIC;
REVOKE ALL ON FUNCTION mana_ai.mission_lease_stats() FROM PUBLIC;
REVOKE ALL ON FUNCTION mana_ai.next_due_in_ms() FROM PUBLIC;
REVOKE ALL ON FUNCTION mana_ai.refresh_stored_snapshots(JSONB) FROM PUBLIC;
REVOKE ALL ON FUNCTION mana_ai.refresh_write_snapshots(JSONB, JSONB, JSONB) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mana_ai.claim_due_missions(TEXT, INTEGER, INTEGER, DOUBLE PRECISION) TO mana_ai_runner;
GRANT EXECUTE ON FUNCTION mana_ai.release_mission_leases(TEXT, JSONB) TO mana_ai_runner;
GRANT EXECUTE ON FUNCTION mana_ai.renew_mission_leases(TEXT, JSONB, DOUBLE PRECISION) TO mana_ai_runner;
GRANT EXECUTE ON FUNCTION mana_ai.mission_lease_stats() TO mana_ai_runner;
GRANT EXECUTE ON FUNCTION mana_ai.next_due_in_ms() TO mana_ai_runner;
GRANT EXECUTE ON FUNCTION mana_ai.refresh_stored_snapshots(JSONB) TO mana_ai_runner;
GRANT EXECUTE ON FUNCTION mana_ai.refresh_write_snapshots(JSONB, JSONB, JSONB) TO mana_ai_runner;

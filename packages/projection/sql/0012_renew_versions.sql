-- The lease heartbeat keeps the write-back's fast path (issue 13: PostgreSQL and runner CPU per
-- plan). A renewal updates the snapshot row, so its version (xmin) changes and the claim's version
-- no longer matches: every run that crossed a beat lost the fast path. mana_ai.renew_mission_lease_versions
-- is renew_mission_leases of 0006 that also returns, per renewed row, its version before and after
-- the renewal; a runner holding the version from before moves to the one after (nothing but the
-- lease changed), while a runner holding another one (a refresh or a write changed the row since)
-- keeps it and falls back to the read.
-- Safe to run again.

-- Extends claim_owner's leases on the given keys to the database's now + lease_ms; returns the keys
-- it still held, each with the row's version after the renewal (`version`) and before it
-- (`version_before`). The rows are locked first (FOR UPDATE: a row a concurrent refresh or
-- write-back changed is waited for and read again at its latest version), so `version_before` is the
-- version this update replaced, with no change in between. A heartbeat must not queue behind a row
-- lock held by a stuck session: it fails after the lock timeout and the next beat tries again. A
-- new function rather than a new result type for renew_mission_leases: every migration stays safe to
-- run again after the later ones, and a runner of the previous release keeps calling
-- renew_mission_leases, which is left as it is.
CREATE OR REPLACE FUNCTION mana_ai.renew_mission_lease_versions(claim_owner TEXT, keys JSONB, lease_ms DOUBLE PRECISION)
RETURNS TABLE (user_id TEXT, mission_id TEXT, version TEXT, version_before TEXT)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog
SET lock_timeout = '5s'
AS $fn$
#variable_conflict use_column
BEGIN
  RETURN QUERY
    WITH locked AS (
      SELECT s.user_id, s.mission_id, s.xmin::text AS version_before
      FROM mana_ai.mission_snapshots s
      JOIN jsonb_to_recordset(keys) AS k(user_id TEXT, mission_id TEXT) ON s.user_id = k.user_id AND s.mission_id = k.mission_id
      WHERE s.lease_owner = claim_owner
      FOR UPDATE OF s),
    renewed AS (
      UPDATE mana_ai.mission_snapshots s SET lease_until = clock_timestamp() + make_interval(secs => lease_ms / 1000)
      FROM locked l
      WHERE s.user_id = l.user_id AND s.mission_id = l.mission_id AND s.lease_owner = claim_owner
      RETURNING s.user_id, s.mission_id, s.xmin::text AS version, l.version_before)
    SELECT r.user_id, r.mission_id, r.version, r.version_before FROM renewed r;
END
$fn$;

DO $owner$
BEGIN
  ALTER FUNCTION mana_ai.renew_mission_lease_versions(TEXT, JSONB, DOUBLE PRECISION) OWNER TO mana_ai_feed;
END
$owner$;
REVOKE ALL ON FUNCTION mana_ai.renew_mission_lease_versions(TEXT, JSONB, DOUBLE PRECISION) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mana_ai.renew_mission_lease_versions(TEXT, JSONB, DOUBLE PRECISION) TO mana_ai_runner;

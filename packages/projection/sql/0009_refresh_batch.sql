-- The snapshot refresh reads stored snapshots only through the change feed (DESIGN §7): one
-- SECURITY DEFINER function returns a batch of the feed after a cursor together with the stored
-- snapshots and tombstones of the records in that batch, and nothing else. The keys-based
-- refresh_stored_snapshots of 0006, which returned the snapshot of any key its caller named, is
-- dropped. The runner's own rows (client_id 'mana-ai-runner') whose mission snapshot already holds
-- them — the write-back merges its row into the snapshot in the same transaction — come without
-- their data and are not merged again, and a mission's last_applied_at moves past them, so the
-- write-back does not read them again either. Snapshots of the empty user id (never a user: rows
-- with it are no longer projected) are removed. Safe to run again.

-- Dropped as its owner mana_ai_feed: on the owner path the migrating role may SET ROLE to it but
-- does not inherit its rights (docs/database.md, step 1).
DO $drop$
DECLARE
  migrating TEXT := current_user;
BEGIN
  IF to_regprocedure('mana_ai.refresh_stored_snapshots(jsonb)') IS NOT NULL THEN
    SET LOCAL ROLE mana_ai_feed;
    DROP FUNCTION mana_ai.refresh_stored_snapshots(JSONB);
    EXECUTE format('SET LOCAL ROLE %I', migrating);
  END IF;
END
$drop$;

-- One refresh batch: the feed rows after (after_created_at, after_id), oldest first, up to max_rows
-- and stopping before the oldest open transaction, like change_feed. Each feed row comes as kind
-- 'change' (to merge), or as 'applied' without data and field_meta: an update by the runner whose
-- stamps the stored mission snapshot holds, every one (its write-back merged the row into the
-- snapshot; merging it again changes nothing). A runner's update stamps every field of its data
-- (docs/wire-contract.md); a snapshot rebuilt from an older log position, or one whose write failed,
-- lacks the stamps, and the row is merged. After them, for each record with a 'change' row: its
-- stored snapshot (kind 'snapshot': record, version (xmin), a mission's agent, and what its claim
-- lane reads, see 0006) or its tombstone (kind 'tombstone'). The snapshot of a mission with only
-- 'applied' rows gets last_applied_at = its last such row; for the others the caller writes it.
CREATE OR REPLACE FUNCTION mana_ai.refresh_batch(after_created_at TIMESTAMPTZ, after_id UUID, max_rows INTEGER)
RETURNS TABLE (
  kind TEXT, id UUID, table_name TEXT, record_id TEXT, user_id TEXT, op TEXT, data JSONB, field_meta JSONB,
  created_at TIMESTAMPTZ, record JSONB, version TEXT, agent_id TEXT, lane_state TEXT
)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, public
SET plan_cache_mode = force_custom_plan
AS $fn$
#variable_conflict use_column
DECLARE
  horizon TIMESTAMPTZ := mana_ai.change_feed_horizon();
BEGIN
  RETURN QUERY
    WITH batch AS MATERIALIZED (
      SELECT c.id, c.table_name, c.record_id, c.user_id, c.op, c.client_id, c.data, c.field_meta, c.created_at
      FROM public.sync_changes c
      WHERE c.app_id = 'ai' AND c.table_name IN ('aiMissions', 'agents')
        AND (c.created_at, c.id) > (coalesce(after_created_at, '-infinity'::timestamptz),
                                    coalesce(after_id, '00000000-0000-0000-0000-000000000000'::uuid))
        AND c.created_at < horizon
      ORDER BY c.created_at, c.id
      LIMIT least(greatest(coalesce(max_rows, 1000), 1), 10000)
    ),
    marked AS MATERIALIZED (
      SELECT b.*, (
        b.client_id = 'mana-ai-runner' AND b.table_name = 'aiMissions' AND b.op = 'update'
        AND jsonb_typeof(b.field_meta) = 'object' AND b.field_meta <> '{}'::jsonb
        AND EXISTS (
          SELECT 1 FROM mana_ai.mission_snapshots s
          WHERE s.user_id = b.user_id AND s.mission_id = b.record_id
            AND s.record -> '__fieldMeta' @> b.field_meta)
      ) AS applied
      FROM batch b
    ),
    merged AS (
      SELECT DISTINCT m.table_name, m.user_id, m.record_id FROM marked m WHERE NOT m.applied
    ),
    -- A mission whose rows in this batch are all applied ones is not written by the caller: its
    -- snapshot's last_applied_at moves past them here, so a write-back does not read them again.
    passed AS (
      UPDATE mana_ai.mission_snapshots s SET last_applied_at = p.last_at
      FROM (
        SELECT m.user_id, m.record_id, max(m.created_at) AS last_at FROM marked m
        WHERE m.applied AND NOT EXISTS (
          SELECT 1 FROM merged k WHERE k.table_name = 'aiMissions' AND k.user_id = m.user_id AND k.record_id = m.record_id)
        GROUP BY m.user_id, m.record_id
      ) AS p
      WHERE s.user_id = p.user_id AND s.mission_id = p.record_id AND coalesce(s.last_applied_at, '-infinity') < p.last_at
    )
    SELECT u.kind, u.id, u.table_name, u.record_id, u.user_id, u.op, u.data, u.field_meta, u.created_at,
           u.record, u.version, u.agent_id, u.lane_state
    FROM (
      SELECT CASE WHEN m.applied THEN 'applied' ELSE 'change' END AS kind, m.id, m.table_name, m.record_id, m.user_id, m.op,
             CASE WHEN m.applied THEN NULL ELSE m.data END AS data,
             CASE WHEN m.applied THEN NULL ELSE m.field_meta END AS field_meta,
             m.created_at, NULL::jsonb AS record, NULL::text AS version, NULL::text AS agent_id, NULL::text AS lane_state
      FROM marked m
      UNION ALL
      SELECT 'snapshot', NULL, 'aiMissions', s.mission_id, s.user_id, NULL, NULL, NULL, NULL,
             s.record, s.xmin::text, s.agent_id, json_build_array(s.agent_id, s.active, s.next_run_at)::text
      FROM merged k JOIN mana_ai.mission_snapshots s ON s.user_id = k.user_id AND s.mission_id = k.record_id
      WHERE k.table_name = 'aiMissions'
      UNION ALL
      SELECT 'snapshot', NULL, 'agents', a.agent_id, a.user_id, NULL, NULL, NULL, NULL,
             a.record, a.xmin::text, NULL, json_build_array(a.deleted, a.max_concurrent)::text
      FROM merged k JOIN mana_ai.agent_snapshots a ON a.user_id = k.user_id AND a.agent_id = k.record_id
      WHERE k.table_name = 'agents'
      UNION ALL
      SELECT 'tombstone', NULL, t.table_name, t.record_id, t.user_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
      FROM merged k JOIN mana_ai.snapshot_tombstones t
        ON t.table_name = k.table_name AND t.user_id = k.user_id AND t.record_id = k.record_id
    ) AS u
    ORDER BY u.created_at NULLS LAST, u.id;
END
$fn$;

DO $owner$
BEGIN
  ALTER FUNCTION mana_ai.refresh_batch(TIMESTAMPTZ, UUID, INTEGER) OWNER TO mana_ai_feed;
END
$owner$;
REVOKE ALL ON FUNCTION mana_ai.refresh_batch(TIMESTAMPTZ, UUID, INTEGER) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mana_ai.refresh_batch(TIMESTAMPTZ, UUID, INTEGER) TO mana_ai_runner;

-- Rows with an empty user id are skipped by the refresh (row.skipped, reason empty-user-id): remove
-- the snapshots and lanes an earlier refresh made of them, which could be claimed but never written
-- back. RLS is forced on the snapshot tables, for their owner too: the deletes run scoped to ''.
DO $empty$
DECLARE
  previous TEXT := current_setting('app.current_user_id', true);
BEGIN
  PERFORM set_config('app.current_user_id', '', true);
  DELETE FROM mana_ai.mission_snapshots WHERE user_id = '';
  DELETE FROM mana_ai.agent_snapshots WHERE user_id = '';
  DELETE FROM mana_ai.mission_lanes WHERE user_id = '';
  PERFORM set_config('app.current_user_id', coalesce(previous, ''), true);
END
$empty$;

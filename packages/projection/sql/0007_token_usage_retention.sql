-- The token ledger is read for the last 24 hours only (an agent's rolling budget); older rows are
-- deleted in bounded batches by prune_token_usage, which the runner calls periodically. Pruning is
-- cross-user maintenance, so it runs as the NOLOGIN role mana_ai_feed (SECURITY DEFINER) and returns
-- a count only. Safe to run again.

CREATE INDEX IF NOT EXISTS idx_token_usage_ts ON mana_ai.token_usage (ts);

GRANT SELECT, DELETE ON mana_ai.token_usage TO mana_ai_feed;
-- Needed once row-level security is on for the ledger; harmless before.
DROP POLICY IF EXISTS token_usage_prune_select ON mana_ai.token_usage;
CREATE POLICY token_usage_prune_select ON mana_ai.token_usage FOR SELECT TO mana_ai_feed USING (true);
DROP POLICY IF EXISTS token_usage_prune_delete ON mana_ai.token_usage;
CREATE POLICY token_usage_prune_delete ON mana_ai.token_usage FOR DELETE TO mana_ai_feed USING (true);

-- Deletes at most max_rows of the oldest rows older than keep_seconds (never less than 24 hours) on
-- the database's clock. Returns how many were deleted (a concurrent pruner's rows count once).
CREATE OR REPLACE FUNCTION mana_ai.prune_token_usage(keep_seconds DOUBLE PRECISION, max_rows INTEGER) RETURNS INTEGER
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog
AS $fn$
DECLARE
  deleted INTEGER;
BEGIN
  DELETE FROM mana_ai.token_usage
  WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM mana_ai.token_usage
    WHERE ts < now() - make_interval(secs => greatest(keep_seconds, 86400))
    ORDER BY ts
    LIMIT greatest(max_rows, 0)));
  GET DIAGNOSTICS deleted = ROW_COUNT;
  RETURN deleted;
END
$fn$;

DO $owner$
BEGIN
  ALTER FUNCTION mana_ai.prune_token_usage(DOUBLE PRECISION, INTEGER) OWNER TO mana_ai_feed;
END
$owner$;
REVOKE ALL ON FUNCTION mana_ai.prune_token_usage(DOUBLE PRECISION, INTEGER) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mana_ai.prune_token_usage(DOUBLE PRECISION, INTEGER) TO mana_ai_runner;

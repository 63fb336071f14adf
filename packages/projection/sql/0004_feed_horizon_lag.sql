-- How far the change feed is held back: the runner samples it after each tick so that a long or
-- idle-in-transaction session (a backup, a forgotten psql) that stalls the refresh is visible.
-- Only a duration leaves the SECURITY DEFINER function, never who holds the transaction.
CREATE OR REPLACE FUNCTION mana_ai.change_feed_lag_seconds() RETURNS DOUBLE PRECISION
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog
AS $fn$
  SELECT greatest(0, extract(epoch FROM (now() - mana_ai.change_feed_horizon())))::double precision
$fn$;

DO $owner$
BEGIN
  ALTER FUNCTION mana_ai.change_feed_lag_seconds() OWNER TO mana_ai_feed;
END
$owner$;
REVOKE ALL ON FUNCTION mana_ai.change_feed_lag_seconds() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mana_ai.change_feed_lag_seconds() TO mana_ai_runner;

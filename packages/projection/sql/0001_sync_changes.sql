-- The sync log, exactly as mana-sync creates it (docs/wire-contract.md#the-sync-log). Only created
-- where the database has no sync_changes table yet (embedded/dev); an existing table owned by
-- mana-sync is never touched.
DO $migration$
BEGIN
  IF to_regclass('public.sync_changes') IS NULL THEN
    CREATE TABLE public.sync_changes (
      id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
      app_id TEXT NOT NULL,
      table_name TEXT NOT NULL,
      record_id TEXT NOT NULL,
      user_id TEXT NOT NULL,
      op TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
      data JSONB,
      field_meta JSONB DEFAULT '{}',
      client_id TEXT NOT NULL,
      created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
      schema_version INT NOT NULL DEFAULT 1,
      actor JSONB,
      origin TEXT,
      space_id TEXT
    );
    CREATE INDEX IF NOT EXISTS idx_sync_changes_user_app ON public.sync_changes (user_id, app_id, created_at);
    CREATE INDEX IF NOT EXISTS idx_sync_changes_table_record ON public.sync_changes (table_name, record_id, created_at);
    CREATE INDEX IF NOT EXISTS idx_sync_changes_since ON public.sync_changes (user_id, app_id, table_name, created_at);
    CREATE INDEX IF NOT EXISTS idx_sync_changes_user_space_app_since
      ON public.sync_changes (user_id, space_id, app_id, created_at) WHERE space_id IS NOT NULL;
    ALTER TABLE public.sync_changes ENABLE ROW LEVEL SECURITY;
    ALTER TABLE public.sync_changes FORCE ROW LEVEL SECURITY;
    CREATE POLICY sync_changes_user_isolation ON public.sync_changes
      USING (user_id = current_setting('app.current_user_id', true))
      WITH CHECK (user_id = current_setting('app.current_user_id', true));
    CREATE POLICY sync_changes_space_member_read ON public.sync_changes FOR SELECT
      USING (space_id IS NOT NULL AND space_id = ANY(string_to_array(coalesce(current_setting('app.current_user_space_ids', true), ''), ',')));
  END IF;
END
$migration$;

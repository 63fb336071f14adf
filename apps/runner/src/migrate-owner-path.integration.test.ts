import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createProjection, withUser } from '@mana-ai/projection';
import postgres, { type Notice, type Sql } from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { noopLogger } from '@mana-ai/core';
import { migrateOrExplain } from './boot.js';
import { RunnerError } from './errors.js';
import { allMigrations, migrate } from './migrate.js';

// docs/database.md, "As mana-sync's owner role, without a superuser for the migration", then
// "Run the service with a least-privileged login role", on an empty database that mana-sync's own
// role owns (not a clone of the superuser-migrated template). mana_ai_feed and mana_ai_runner already
// exist cluster-wide (the template migration created them) and are shared by the whole run.

/** The SQL block of `docs/<doc>` whose first line starts with `marker`, for `owner` as mana_sync. */
function documentedStep(marker: string, owner: string, doc = 'database.md'): string {
  const text = readFileSync(new URL(`../../../docs/${doc}`, import.meta.url), 'utf8');
  const block = [...text.matchAll(/```sql\n([\s\S]*?)```/g)].map((match) => match[1] ?? '').find((sql) => sql.startsWith(marker));
  if (!block) throw new Error(`docs/${doc} has no SQL block starting with ${marker}`);
  return block.replace(/\bmana_sync\b/g, owner);
}

function urlFor(adminUrl: string, database: string, user?: { name: string; password: string }): string {
  const parsed = new URL(adminUrl);
  parsed.pathname = `/${database}`;
  if (user) {
    parsed.username = encodeURIComponent(user.name);
    parsed.password = encodeURIComponent(user.password);
  }
  return parsed.toString();
}

/**
 * The owner path's starting point, set up before the suite and removed after it: an empty database
 * that mana-sync's own login role (no superuser, no CREATEROLE, no BYPASSRLS) owns, with the log table
 * it created. `connect()` is a superuser on that database, `connect(user)` that user; every role in
 * `roles` (the owner first) is dropped at the end.
 */
function useSyncOwnedDatabase(tag: string) {
  const suffix = randomBytes(6).toString('hex');
  const database = `mana_sync_${tag}${suffix}`;
  const owner = { name: `owner_${tag}${suffix}`, password: randomBytes(12).toString('hex') };
  const roles: string[] = [];
  const clients: Sql[] = [];
  let adminUrl: string;
  let admin: Sql;
  let databaseCreated = false;

  const connect = (user?: { name: string; password: string }, onnotice: (notice: Notice) => void = () => {}): Sql => {
    const client = postgres(urlFor(adminUrl, database, user), { max: 2, onnotice });
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    adminUrl = inject('manaAiTestPostgres').adminUrl;
    admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
    await admin.unsafe(`CREATE ROLE ${owner.name} LOGIN NOSUPERUSER NOCREATEROLE NOBYPASSRLS PASSWORD '${owner.password}'`);
    roles.push(owner.name);
    await admin.unsafe(`CREATE DATABASE ${database} OWNER ${owner.name}`);
    databaseCreated = true;
    const syncChanges = allMigrations.find((migration) => migration.id === 'projection/0001_sync_changes');
    if (!syncChanges) throw new Error('projection/0001_sync_changes is missing');
    await connect(owner).unsafe(syncChanges.sql);
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.end({ timeout: 5 })));
    if (databaseCreated) await admin.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    for (const role of roles.reverse()) {
      // A role that was never granted one of them only draws a warning.
      await admin.unsafe(`REVOKE mana_ai_feed, mana_ai_runner FROM ${role}`);
      await admin.unsafe(`DROP OWNED BY ${role}`);
      await admin.unsafe(`DROP ROLE IF EXISTS ${role}`);
    }
    await admin?.end();
  });

  return { owner, roles, connect };
}

describe('migrate as the owner of mana_sync', () => {
  const { owner, roles, connect } = useSyncOwnedDatabase('');
  const login = { name: `login_${randomBytes(6).toString('hex')}`, password: randomBytes(12).toString('hex') };
  const ownerNotices: string[] = [];

  it('applies every migration without a superuser when the owner has run steps 1 and 2', async () => {
    // Step 1 exactly as documented, as a superuser connected to mana_sync (the roles already exist
    // on this cluster, which the documented block must tolerate).
    const superuser = connect();
    await superuser.unsafe(documentedStep('-- 1.', owner.name));
    // Step 2, as the owner.
    const ownerSql = connect(owner, (notice) => ownerNotices.push(String(notice.message)));
    const [rights] = await ownerSql<{ superuser: boolean; createrole: boolean }[]>`
      SELECT rolsuper AS superuser, rolcreaterole AS createrole FROM pg_roles WHERE rolname = current_user`;
    expect(rights).toEqual({ superuser: false, createrole: false });
    await ownerSql.unsafe(documentedStep('-- 2.', owner.name));
    // Step 3, as the owner.
    const report = await migrate(ownerSql);
    expect(report).toEqual({ applied: allMigrations.map((m) => m.id), skipped: [] });
    const recorded = await ownerSql<{ id: string }[]>`SELECT id FROM mana_ai.schema_migrations ORDER BY id`;
    expect(recorded.map((row) => row.id)).toEqual(allMigrations.map((m) => m.id).sort());
    // Nothing was skipped for lack of rights: neither the sync_changes part nor pg_read_all_stats.
    expect(ownerNotices.filter((message) => message.startsWith('mana_ai:'))).toEqual([]);
    const [objects] = await ownerSql<
      { tableOwner: string; policy: boolean; index: boolean; feedGrant: boolean; runnerGrant: boolean }[]
    >`
      SELECT pg_get_userbyid(c.relowner) AS "tableOwner",
        EXISTS (SELECT 1 FROM pg_policies WHERE tablename = 'sync_changes' AND policyname = 'sync_changes_mana_ai_feed') AS policy,
        to_regclass('public.idx_sync_changes_mana_ai_feed') IS NOT NULL AS index,
        has_table_privilege('mana_ai_feed', c.oid, 'SELECT') AS "feedGrant",
        has_table_privilege('mana_ai_runner', c.oid, 'SELECT, INSERT') AS "runnerGrant"
      FROM pg_class c WHERE c.oid = 'public.sync_changes'::regclass`;
    expect(objects).toEqual({ tableOwner: owner.name, policy: true, index: true, feedGrant: true, runnerGrant: true });
    const functions = await ownerSql<{ name: string; owner: string; definer: boolean }[]>`
      SELECT p.proname AS name, pg_get_userbyid(p.proowner) AS owner, p.prosecdef AS definer
      FROM pg_proc p WHERE p.pronamespace = 'mana_ai'::regnamespace ORDER BY p.proname`;
    expect(functions).toEqual([
      { name: 'change_feed', owner: 'mana_ai_feed', definer: true },
      { name: 'change_feed_horizon', owner: 'mana_ai_feed', definer: true },
      { name: 'change_feed_lag_seconds', owner: 'mana_ai_feed', definer: true },
      { name: 'change_feed_pending', owner: 'mana_ai_feed', definer: true },
      { name: 'claim_due_missions', owner: 'mana_ai_feed', definer: true },
      { name: 'claim_mission_snapshots', owner: owner.name, definer: false },
      { name: 'claim_missions', owner: owner.name, definer: false },
      { name: 'clear_mission_lanes', owner: owner.name, definer: false },
      { name: 'mission_lease_stats', owner: 'mana_ai_feed', definer: true },
      { name: 'next_due_in_ms', owner: 'mana_ai_feed', definer: true },
      { name: 'notify_ai_changes', owner: owner.name, definer: false },
      { name: 'prune_token_usage', owner: 'mana_ai_feed', definer: true },
      { name: 'refresh_batch', owner: 'mana_ai_feed', definer: true },
      { name: 'refresh_write_snapshots', owner: 'mana_ai_feed', definer: true },
      { name: 'release_mission_leases', owner: 'mana_ai_feed', definer: true },
      { name: 'renew_mission_lease_versions', owner: 'mana_ai_feed', definer: true },
      { name: 'renew_mission_leases', owner: 'mana_ai_feed', definer: true },
      { name: 'research_job_keys', owner: 'mana_ai_feed', definer: true },
      { name: 'research_job_of', owner: owner.name, definer: false },
      { name: 'sync_mission_lanes', owner: 'mana_ai_feed', definer: true },
      { name: 'write_back_read', owner: owner.name, definer: false },
      { name: 'write_back_write', owner: owner.name, definer: false },
    ]);
    // The owner path installs the change trigger that wakes the dispatchers.
    const triggers = await ownerSql<{ name: string }[]>`
      SELECT tgname AS name FROM pg_trigger WHERE tgrelid = 'public.sync_changes'::regclass AND NOT tgisinternal`;
    expect(triggers.map((row) => row.name)).toEqual(['mana_ai_notify_changes']);
    // Step 4, as a superuser: the owner keeps no membership in what the migration needed.
    await superuser.unsafe(documentedStep('-- 4.', owner.name));
    const [memberships] = await ownerSql<{ feed: boolean; stats: boolean; granted: string }[]>`
      SELECT pg_has_role('mana_ai_feed', 'MEMBER') AS feed, pg_has_role('pg_read_all_stats', 'MEMBER') AS stats,
        (SELECT count(*) FROM pg_auth_members WHERE member = current_user::regrole)::text AS granted`;
    expect(memberships).toEqual({ feed: false, stats: false, granted: '0' });
  });

  it('lets a login with only mana_ai_runner read the feed and its lag when the owner has migrated', async () => {
    // "Run the service with a least-privileged login role", as a superuser connected to mana_sync.
    const superuser = connect();
    await superuser.unsafe(`CREATE ROLE ${login.name} LOGIN NOBYPASSRLS PASSWORD '${login.password}'`);
    roles.push(login.name);
    await superuser.unsafe(`GRANT mana_ai_runner TO ${login.name}`);
    const runtime = connect(login);
    const [rights] = await runtime<{ database: boolean; schema: boolean; public: boolean; feed: boolean }[]>`
      SELECT has_database_privilege(current_database(), 'CREATE') AS database,
        has_schema_privilege('mana_ai', 'CREATE') AS schema, has_schema_privilege('public', 'CREATE') AS public,
        pg_has_role('mana_ai_feed', 'MEMBER') AS feed`;
    expect(rights).toEqual({ database: false, schema: false, public: false, feed: false });
    await withUser(runtime, 'user-a', async (tx) => {
      await tx`
        INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id) VALUES
          ('ai', 'aiMissions', 'mission-1', 'user-a', 'insert', '{"title":"t"}', 'owner-path-test'),
          ('todo', 'tasks', 'task-1', 'user-a', 'insert', '{}', 'owner-path-test')`;
    });
    // RLS still applies to the login: without a user it sees none of the rows.
    const [visible] = await runtime<{ count: string }[]>`SELECT count(*) FROM public.sync_changes`;
    expect(visible?.count).toBe('0');
    const feed = await runtime<{ table_name: string; record_id: string; user_id: string; op: string }[]>`
      SELECT table_name, record_id, user_id, op FROM mana_ai.change_feed(NULL, NULL, 10)`;
    expect(feed).toEqual([{ table_name: 'aiMissions', record_id: 'mission-1', user_id: 'user-a', op: 'insert' }]);
    const [lag] = await runtime<{ seconds: number }[]>`SELECT mana_ai.change_feed_lag_seconds() AS seconds`;
    expect(typeof lag?.seconds).toBe('number');
    expect(lag?.seconds).toBeGreaterThanOrEqual(0);
  });

  it('boots without DDL as that login when every migration is already applied', async () => {
    const runtime = connect(login);
    const report = await migrate(runtime);
    expect(report).toEqual({ applied: [], skipped: allMigrations.map((m) => m.id) });
  });

  it('fails boot with RUNNER_MIGRATION_FAILED naming the pending migration when the login may not apply it', async () => {
    const pendingId = 'research/0002_research_job_state';
    const ownerSql = connect(owner);
    const [recorded] = await ownerSql<{ checksum: string }[]>`DELETE FROM mana_ai.schema_migrations WHERE id = ${pendingId} RETURNING checksum`;
    try {
      const runtime = connect(login);
      const failure = await migrateOrExplain(runtime, noopLogger).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(RunnerError.isInstance(failure) && failure.code).toBe('RUNNER_MIGRATION_FAILED');
      const message = (failure as Error).message;
      expect(message).toContain(`pending migration ${pendingId} could not be applied (permission denied`);
      expect(message).toContain('mana-ai migrate');
      expect(message).toContain('docs/database.md');
      expect((failure as RunnerError).details).toEqual({ pending: [pendingId] });
    } finally {
      await ownerSql`INSERT INTO mana_ai.schema_migrations (id, checksum) VALUES (${pendingId}, ${recorded!.checksum})`;
    }
  });

  it('leaves mana_sync scoped to one user seeing none of another user’s ai rows after the owner path', async () => {
    const ownerSql = connect(owner);
    for (const user of ['sync-user-a', 'sync-user-b']) {
      await withUser(ownerSql, user, async (tx) => {
        await tx`
          INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id) VALUES
            ('ai', 'aiMissions', ${`mission-of-${user}`}, ${user}, 'insert', '{"title":"t"}', 'owner-path-test'),
            ('ai', 'agents', ${`agent-of-${user}`}, ${user}, 'insert', '{"name":"n"}', 'owner-path-test')`;
      });
    }
    // mana-sync's own sessions set app.current_user_id, as they do for a user's pull.
    const seen = await withUser(ownerSql, 'sync-user-a', (tx) => tx<{ user_id: string; record_id: string }[]>`
      SELECT user_id, record_id FROM public.sync_changes WHERE app_id = 'ai' ORDER BY record_id`);
    expect(seen).toEqual([
      { user_id: 'sync-user-a', record_id: 'agent-of-sync-user-a' },
      { user_id: 'sync-user-a', record_id: 'mission-of-sync-user-a' },
    ]);
    const [unscoped] = await ownerSql<{ count: string }[]>`SELECT count(*) FROM public.sync_changes`;
    expect(unscoped?.count).toBe('0');
    // mana_sync also owns the runner's tables on this path: RLS is forced on it there as well.
    const runtime = connect(login);
    await createProjection({ sql: runtime }).refresh();
    for (const user of ['sync-user-a', 'sync-user-b']) {
      await withUser(runtime, user, (tx) => tx`
        INSERT INTO mana_ai.token_usage (user_id, agent_id, mission_id, tokens_used) VALUES (${user}, 'a', 'm', 3)`);
    }
    for (const table of ['mission_snapshots', 'agent_snapshots', 'token_usage']) {
      const scoped = await withUser(ownerSql, 'sync-user-a', (tx) => tx.unsafe<{ user_id: string }[]>(`SELECT DISTINCT user_id FROM mana_ai.${table}`));
      expect({ table, users: scoped.map((row) => row.user_id) }).toEqual({ table, users: ['sync-user-a'] });
      const all = await ownerSql.unsafe(`SELECT 1 FROM mana_ai.${table}`);
      expect({ table, rows: all.length }).toEqual({ table, rows: 0 });
    }
  });
});

// docs/upgrading.md, "A mana_ai schema owned by postgres": the original created mana_ai as a
// superuser. The owner path cannot migrate that until the documented block hands the schema over.
describe('migrate as the owner of mana_sync when the original left mana_ai owned by a superuser', () => {
  const { owner, connect } = useSyncOwnedDatabase('orig_');
  /** The original service's tables: what these migrations create, as a superuser, unrecorded. */
  const ORIGINAL = ['projection/0002_mana_ai_schema', 'resolvers/0001_decrypt_audit', 'research/0001_research_jobs'];

  beforeAll(async () => {
    const superuser = connect();
    await superuser.unsafe('CREATE SCHEMA mana_ai');
    for (const id of ORIGINAL) await superuser.unsafe(allMigrations.find((migration) => migration.id === id)!.sql);
  });

  it('cannot migrate before the documented ownership block and applies every migration after it', async () => {
    const superuser = connect();
    await superuser.unsafe(documentedStep('-- 1.', owner.name));
    const ownerSql = connect(owner);
    await expect(migrate(ownerSql)).rejects.toThrow(/permission denied for schema mana_ai|must be owner/);

    await superuser.unsafe(documentedStep('-- upgrade:', owner.name, 'upgrading.md'));
    await ownerSql.unsafe(documentedStep('-- 2.', owner.name));
    const report = await migrate(ownerSql);
    expect(report.applied).toEqual(allMigrations.map((m) => m.id));
    const [owners] = await ownerSql<{ schema: string; foreign: string[] }[]>`
      SELECT pg_get_userbyid(n.nspowner) AS schema,
        ARRAY(SELECT c.relname::text FROM pg_class c WHERE c.relnamespace = n.oid AND c.relowner <> n.nspowner AND c.relkind IN ('r', 'S') ORDER BY 1) AS foreign
      FROM pg_namespace n WHERE n.nspname = 'mana_ai'`;
    expect(owners).toEqual({ schema: owner.name, foreign: [] });
    const feed = await ownerSql<{ owner: string }[]>`
      SELECT DISTINCT pg_get_userbyid(p.proowner) AS owner FROM pg_proc p
      WHERE p.pronamespace = 'mana_ai'::regnamespace AND p.proname LIKE 'change_feed%'`;
    expect(feed).toEqual([{ owner: 'mana_ai_feed' }]);
  });
});

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type TestDatabase, createTestDatabase } from '@mana-ai/test-postgres';
import postgres, { type Sql } from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { applyMigrations } from './apply-migrations.js';
import { migrations } from './migrations.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

/** Removes what the migrations made in this test file's database (the roles are the cluster's and stay). */
async function dropSchema(): Promise<void> {
  await db.sql.unsafe('DROP SCHEMA mana_ai CASCADE; DROP TABLE public.sync_changes');
}

describe('migrations', () => {
  it('applies each migration again without error or change when its schema already exists', async () => {
    await dropSchema();
    const state = () => db.sql`
      SELECT (SELECT count(*)::int FROM pg_policies WHERE tablename = 'sync_changes') AS policies,
             (SELECT count(*)::int FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'mana_ai') AS functions`;
    for (const migration of migrations) {
      await db.sql.unsafe(migration.sql);
      const before = await state();
      await db.sql.unsafe(migration.sql);
      expect(await state()).toEqual(before);
    }
  });

  it('creates the feed owner and the runner role without login or BYPASSRLS, and the feed index', async () => {
    const roles = await db.sql`
      SELECT rolname, rolcanlogin, rolbypassrls, rolsuper FROM pg_roles
      WHERE rolname IN ('mana_ai_feed', 'mana_ai_runner') ORDER BY rolname`;
    expect(roles.map((role) => [role.rolname, role.rolbypassrls, role.rolsuper])).toEqual([
      ['mana_ai_feed', false, false],
      ['mana_ai_runner', false, false],
    ]);
    const [feed] = await db.sql`
      SELECT pg_get_userbyid(p.proowner) AS owner, p.prosecdef AS security_definer
      FROM pg_proc p WHERE p.oid = 'mana_ai.change_feed(timestamptz, uuid, integer)'::regprocedure`;
    expect(feed).toEqual({ owner: 'mana_ai_feed', security_definer: true });
    const [index] = await db.sql`SELECT to_regclass('public.idx_sync_changes_mana_ai_feed')::text AS name`;
    expect(index?.name).toBe('idx_sync_changes_mana_ai_feed');
  });
});

describe('migration 0009', () => {
  it('removes the snapshots and lanes an earlier refresh made of rows without a user, and keeps the others', async () => {
    await db.sql`
      INSERT INTO mana_ai.mission_snapshots (user_id, mission_id, record, next_run_at) VALUES
        ('', 'm-nobody', '{"state": "active", "agentId": "a-1"}', '2026-01-01T00:00:00Z'),
        ('u-1', 'm-1', '{"state": "active", "agentId": "a-1"}', '2026-01-01T00:00:00Z')`;
    await db.sql`INSERT INTO mana_ai.agent_snapshots (user_id, agent_id, record) VALUES ('', 'a-1', '{}'), ('u-1', 'a-1', '{}')`;
    await db.sql`SELECT mana_ai.sync_mission_lanes('[{"user_id": "", "agent_id": "a-1"}, {"user_id": "u-1", "agent_id": "a-1"}]')`;
    const migration = migrations.find((m) => m.id === 'projection/0009_refresh_batch')!;
    await db.sql.unsafe(migration.sql);
    const left = await db.sql<{ kind: string; user_id: string }[]>`
      SELECT 'mission' AS kind, user_id FROM mana_ai.mission_snapshots
      UNION ALL SELECT 'agent', user_id FROM mana_ai.agent_snapshots
      UNION ALL SELECT 'lane', user_id FROM mana_ai.mission_lanes ORDER BY 1`;
    expect(left).toEqual([
      { kind: 'agent', user_id: 'u-1' },
      { kind: 'lane', user_id: 'u-1' },
      { kind: 'mission', user_id: 'u-1' },
    ]);
    const [setting] = await db.sql<{ id: string | null }[]>`SELECT current_setting('app.current_user_id', true) AS id`;
    expect(setting?.id ?? '').toBe('');
  });
});

describe('migration 0011', () => {
  it('migrates a database migrated through 0010: claim_mission_snapshots returns the snapshot version and the read time, and claim_missions stays', async () => {
    await dropSchema();
    const through0010 = migrations.slice(0, migrations.findIndex((m) => m.id === 'projection/0010_claim_records') + 1);
    expect((await applyMigrations(db.sql, through0010)).applied).toHaveLength(10);
    await db.sql`
      INSERT INTO mana_ai.mission_snapshots (user_id, mission_id, record, next_run_at) VALUES
        ('u-1', 'm-1', '{"state": "active"}', now() - interval '1 minute'),
        ('u-1', 'm-2', '{"state": "active"}', now() - interval '1 minute')`;
    const claim = (max: number) => db.sql`
      SELECT mission_id, record FROM mana_ai.claim_missions('i-1', ${max}::int, ${max * 2}::int, 60000::float8)`;
    expect(await claim(1)).toEqual([{ mission_id: 'm-1', record: { state: 'active' } }]);
    const through0011 = migrations.slice(0, migrations.findIndex((m) => m.id === 'projection/0011_claim_versions') + 1);
    expect(await applyMigrations(db.sql, through0011)).toMatchObject({ applied: ['projection/0011_claim_versions'] });
    // A runner of the previous release still claims with claim_missions.
    expect(await claim(1)).toEqual([{ mission_id: 'm-2', record: { state: 'active' } }]);
    await db.sql`UPDATE mana_ai.mission_snapshots SET lease_owner = NULL, lease_until = NULL WHERE mission_id = 'm-1'`;
    const [claimed] = await db.sql<{ version: string; read_at_ms: number; now_ms: number }[]>`
      SELECT c.version, c.read_at_ms, (extract(epoch FROM date_trunc('milliseconds', clock_timestamp())) * 1000)::float8 AS now_ms
      FROM mana_ai.claim_mission_snapshots('i-1', 1, 2, 60000::float8) AS c`;
    const [row] = await db.sql<{ version: string }[]>`SELECT xmin::text AS version FROM mana_ai.mission_snapshots WHERE mission_id = 'm-1'`;
    expect(claimed?.version).toBe(row?.version);
    expect(Number.isInteger(claimed?.read_at_ms)).toBe(true);
    expect(claimed!.read_at_ms).toBeLessThanOrEqual(claimed!.now_ms);
    const [grant] = await db.sql<{ runner: boolean; anyone: boolean }[]>`
      SELECT has_function_privilege('mana_ai_runner', 'mana_ai.claim_mission_snapshots(text, integer, integer, double precision)', 'EXECUTE') AS runner,
             has_function_privilege('public', 'mana_ai.claim_mission_snapshots(text, integer, integer, double precision)', 'EXECUTE') AS anyone`;
    expect(grant).toEqual({ runner: true, anyone: false });
  });
});

describe('migration 0012', () => {
  it('migrates a database migrated through 0011: renew_mission_lease_versions returns the versions before and after, and renew_mission_leases stays', async () => {
    await dropSchema();
    const through0011 = migrations.slice(0, migrations.findIndex((m) => m.id === 'projection/0011_claim_versions') + 1);
    expect((await applyMigrations(db.sql, through0011)).applied).toHaveLength(11);
    await db.sql`
      INSERT INTO mana_ai.mission_snapshots (user_id, mission_id, record, next_run_at) VALUES
        ('u-1', 'm-1', '{"state": "active"}', now() - interval '1 minute')`;
    await db.sql`SELECT mission_id FROM mana_ai.claim_missions('i-1', 1, 2, 60000::float8)`;
    const keys = JSON.stringify([{ user_id: 'u-1', mission_id: 'm-1' }]);
    const renew = () => db.sql`SELECT user_id, mission_id FROM mana_ai.renew_mission_leases('i-1', ${keys}::text::jsonb, 60000::float8)`;
    const version = async () => (await db.sql<{ version: string }[]>`SELECT xmin::text AS version FROM mana_ai.mission_snapshots`)[0]!.version;
    expect(await renew()).toEqual([{ user_id: 'u-1', mission_id: 'm-1' }]);
    expect(await applyMigrations(db.sql, migrations)).toMatchObject({ applied: ['projection/0012_renew_versions'] });
    // A runner of the previous release still renews with renew_mission_leases.
    expect(await renew()).toEqual([{ user_id: 'u-1', mission_id: 'm-1' }]);
    const before = await version();
    const renewed = await db.sql`SELECT * FROM mana_ai.renew_mission_lease_versions('i-1', ${keys}::text::jsonb, 60000::float8)`;
    expect(renewed).toEqual([{ user_id: 'u-1', mission_id: 'm-1', version: await version(), version_before: before }]);
    expect(renewed[0]?.version).not.toBe(before);
    const [fn] = await db.sql<{ owner: string; definer: boolean; config: string[]; runner: boolean; anyone: boolean }[]>`
      SELECT pg_get_userbyid(p.proowner) AS owner, p.prosecdef AS definer, p.proconfig AS config,
             has_function_privilege('mana_ai_runner', p.oid, 'EXECUTE') AS runner,
             has_function_privilege('public', p.oid, 'EXECUTE') AS anyone
      FROM pg_proc p WHERE p.oid = 'mana_ai.renew_mission_lease_versions(text, jsonb, double precision)'::regprocedure`;
    expect(fn).toEqual({ owner: 'mana_ai_feed', definer: true, config: ['search_path=pg_catalog', 'lock_timeout=5s'], runner: true, anyone: false });
  });
});

/** The SQL block of docs/database.md whose first line is `marker`, with `mana_sync` as `owner`. */
function documentedBlock(marker: string, owner: string): string {
  const doc = readFileSync(new URL('../../../docs/database.md', import.meta.url), 'utf8');
  const block = [...doc.matchAll(/```sql\n([\s\S]*?)```/g)].map((match) => match[1] ?? '').find((sql) => sql.startsWith(marker));
  if (!block) throw new Error(`docs/database.md has no SQL block starting with ${marker}`);
  return block.replace(/\bmana_sync\b/g, owner);
}

describe('migration 0005 when the migrating role does not own sync_changes', () => {
  const suffix = randomBytes(5).toString('hex');
  const database = `proj_owner_${suffix}`;
  const migrator = { name: `migrator_${suffix}`, password: randomBytes(12).toString('hex') };
  const syncOwner = { name: `sync_owner_${suffix}`, password: randomBytes(12).toString('hex') };
  const clients: Sql[] = [];
  let admin: Sql;
  let adminUrl: string;

  const urlFor = (user?: { name: string; password: string }): string => {
    const url = new URL(adminUrl);
    url.pathname = `/${database}`;
    if (user) {
      url.username = user.name;
      url.password = user.password;
    }
    return url.toString();
  };
  const connect = (user?: { name: string; password: string }, notices: string[] = []): Sql => {
    const client = postgres(urlFor(user), { max: 1, onnotice: (notice) => notices.push(String(notice.message)) });
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    adminUrl = inject('manaAiTestPostgres').adminUrl;
    admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
    for (const role of [migrator, syncOwner]) {
      await admin.unsafe(`CREATE ROLE ${role.name} LOGIN NOSUPERUSER NOCREATEROLE NOBYPASSRLS PASSWORD '${role.password}'`);
    }
    await admin.unsafe(`CREATE DATABASE ${database}`);
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.end({ timeout: 5 })));
    await admin.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    for (const role of [migrator, syncOwner]) {
      await admin.unsafe(`REVOKE mana_ai_feed FROM ${role.name}`);
      await admin.unsafe(`DROP OWNED BY ${role.name}`);
      await admin.unsafe(`DROP ROLE IF EXISTS ${role.name}`);
    }
    await admin.end();
  });

  it('back-fills the typed columns and lanes, skips the trigger with a notice, and takes the documented statements', async () => {
    const superuser = connect();
    // mana-sync's table, owned by its own role; the runner's schema, owned by the migrating role.
    await superuser.unsafe(migrations[0]!.sql);
    await superuser.unsafe(`ALTER TABLE public.sync_changes OWNER TO ${syncOwner.name}`);
    await superuser.unsafe(`GRANT CREATE ON DATABASE ${database} TO ${migrator.name}; GRANT mana_ai_feed TO ${migrator.name}`);
    const notices: string[] = [];
    const migrating = connect(migrator, notices);
    await migrating.unsafe('CREATE SCHEMA mana_ai; GRANT CREATE ON SCHEMA mana_ai TO mana_ai_feed');
    for (const migration of migrations.slice(1, 4)) await migrating.unsafe(migration.sql);
    // Snapshots written before 0005, as a runner of the previous release left them.
    await superuser`
      INSERT INTO mana_ai.mission_snapshots (user_id, mission_id, record, next_run_at) VALUES
        ('u-1', 'm-1', '{"state": "active", "agentId": "a-1"}', '2026-01-02T00:00:00Z'),
        ('u-1', 'm-2', '{"state": "active", "agentId": "a-1"}', '2026-01-01T00:00:00Z'),
        ('u-1', 'm-3', '{"state": "paused", "agentId": "a-2"}', '2026-01-01T00:00:00Z'),
        ('u-1', 'm-4', '{"state": "active", "deletedAt": "2026-01-01T00:00:00Z"}', '2026-01-01T00:00:00Z')`;
    await superuser`
      INSERT INTO mana_ai.agent_snapshots (user_id, agent_id, record) VALUES
        ('u-1', 'a-1', '{"maxConcurrentMissions": "3"}'), ('u-1', 'a-2', '{"deletedAt": "2026-01-01T00:00:00Z"}')`;
    notices.length = 0;
    await migrating.unsafe(migrations[4]!.sql);
    await migrating.unsafe(migrations[4]!.sql);
    expect(notices.filter((notice) => notice.startsWith('mana_ai: the change trigger'))).toHaveLength(2);
    expect(await superuser`SELECT mission_id, agent_id, active FROM mana_ai.mission_snapshots ORDER BY mission_id`).toEqual([
      { mission_id: 'm-1', agent_id: 'a-1', active: true },
      { mission_id: 'm-2', agent_id: 'a-1', active: true },
      { mission_id: 'm-3', agent_id: 'a-2', active: false },
      { mission_id: 'm-4', agent_id: null, active: false },
    ]);
    expect(await superuser`SELECT agent_id, deleted, max_concurrent::text FROM mana_ai.agent_snapshots ORDER BY agent_id`).toEqual([
      { agent_id: 'a-1', deleted: false, max_concurrent: '3' },
      { agent_id: 'a-2', deleted: true, max_concurrent: '1' },
    ]);
    const lanes = await superuser<{ user_id: string; agent_id: string; head_at: Date; max_concurrent: string }[]>`
      SELECT user_id, agent_id, head_at, max_concurrent::text FROM mana_ai.mission_lanes`;
    expect(lanes.map((lane) => ({ ...lane, head_at: lane.head_at.toISOString() }))).toEqual([
      { user_id: 'u-1', agent_id: 'a-1', head_at: '2026-01-01T00:00:00.000Z', max_concurrent: '3' },
    ]);
    const trigger = async () =>
      (await superuser`SELECT count(*)::int AS n FROM pg_trigger WHERE tgname = 'mana_ai_notify_changes'`)[0]?.n;
    expect(await trigger()).toBe(0);
    // docs/database.md: the migrating role lets the owner use the schema, the owner installs the trigger.
    await migrating.unsafe(documentedBlock('-- as the role that ran the migrations', syncOwner.name));
    const owner = connect(syncOwner);
    for (let run = 0; run < 2; run++) await owner.unsafe(documentedBlock('-- as the owner of public.sync_changes', syncOwner.name));
    expect(await trigger()).toBe(1);
    // mana-sync's writes fire it without any right on mana_ai.
    await superuser.unsafe(`REVOKE USAGE ON SCHEMA mana_ai FROM ${syncOwner.name}`);
    await owner.begin(async (tx) => {
      await tx`SELECT set_config('app.current_user_id', 'u-1', true)`;
      await tx`
        INSERT INTO public.sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
        VALUES ('ai', 'aiMissions', 'm-9', 'u-1', 'insert', '{}', 'device')`;
    });
  });
});

/**
 * The PostgreSQL of the system bench: `TEST_DATABASE_URL` (a superuser URL) when given, otherwise a
 * throwaway embedded cluster (the runner's `startEmbeddedPostgres`) with `pg_stat_statements` preloaded, so statements can be counted per role and database.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres, { type Sql } from 'postgres';
import { startEmbeddedPostgres } from '../apps/runner/src/embedded-postgres.js';
import { migrate } from '../apps/runner/src/migrate.js';
import { RUNNER_PASSWORD } from '../tooling/test-postgres/src/sync-log.js';
import { postgresCpuSeconds, processOf } from './process-cpu.js';

/** The role the runners log in as (no superuser, no BYPASSRLS), as in production (DESIGN §3.5). */
export const RUNNER_ROLE = 'mana_ai_runner';

/** A PostgreSQL server for the bench. */
export interface BenchCluster {
  /** Superuser URL of the maintenance database. */
  adminUrl: string;
  /** A superuser client on the maintenance database (probes that must not count for a bench database). */
  admin: Sql;
  /** Pid of the postmaster when the server runs on this machine (its CPU can then be read from /proc). */
  postmasterPid: number | undefined;
  /** True when `pg_stat_statements` is loaded and installed in the maintenance database. */
  statementStats: boolean;
  /** CPU seconds of the whole cluster so far (undefined when it does not run on this machine). */
  cpuSeconds(): number | undefined;
  stop(): Promise<void>;
}

async function startEmbedded(): Promise<{ adminUrl: string; stop(): Promise<void> }> {
  // The runner's own embedded cluster: works as root from a private checkout and leaves no secrets
  // behind. As the test harness's cluster (`fast`), plus pg_stat_statements for the idle figure.
  const root = await mkdtemp(join(tmpdir(), 'mana-ai-system-bench-'));
  const cluster = await startEmbeddedPostgres({
    dataDir: root,
    persistent: false,
    fast: true,
    settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'top' },
  });
  return {
    adminUrl: cluster.url,
    stop: async () => {
      await cluster.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** Starts (or connects to) the bench's PostgreSQL. */
export async function startBenchCluster(): Promise<BenchCluster> {
  const given = process.env.TEST_DATABASE_URL;
  const server = given ? { adminUrl: given, stop: async () => {} } : await startEmbedded();
  const admin = postgres(server.adminUrl, { max: 2, onnotice: () => {} });
  const [backend] = await admin<{ pid: number }[]>`SELECT pg_backend_pid() AS pid`;
  // A backend's parent is the postmaster; absent from /proc when the server runs elsewhere.
  const postmasterPid = processOf(backend!.pid)?.ppid;
  const statementStats = await admin`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`
    .then(() => admin`SELECT count(*) FROM pg_stat_statements`)
    .then(
      () => true,
      () => false,
    );
  return {
    adminUrl: server.adminUrl,
    admin,
    postmasterPid,
    statementStats,
    cpuSeconds: () => (postmasterPid === undefined ? undefined : postgresCpuSeconds(postmasterPid)),
    async stop() {
      await admin.end({ timeout: 5 });
      await server.stop();
    },
  };
}

/** One migrated database of the bench with the runner's login. */
export interface BenchDatabase {
  name: string;
  /** A superuser client on it (writes as mana-sync would; reads past RLS). */
  sql: Sql;
  /** The URL the runners get: this database as {@link RUNNER_ROLE}. */
  runnerUrl: string;
  /** Statements {@link RUNNER_ROLE} has run in this database so far (see {@link BenchCluster.statementStats}). */
  runnerStatements(): Promise<number>;
  /** Committed plus rolled-back transactions of this database so far (reported with a delay of up to ~1 s). */
  transactions(): Promise<number>;
  drop(): Promise<void>;
}

/** A fresh database `name` on `cluster`, migrated by the superuser (the runner role cannot create schemas). */
export async function createBenchDatabase(cluster: BenchCluster, name: string): Promise<BenchDatabase> {
  const { admin } = cluster;
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(cluster.adminUrl);
  url.pathname = `/${name}`;
  const sql = postgres(url.toString(), { max: 4, onnotice: () => {} });
  await migrate(sql);
  // The one password every test gives the cluster-wide role, so a shared TEST_DATABASE_URL cluster keeps working.
  await sql.unsafe(`ALTER ROLE ${RUNNER_ROLE} LOGIN PASSWORD '${RUNNER_PASSWORD}'`);
  url.username = RUNNER_ROLE;
  url.password = RUNNER_PASSWORD;
  const [ids] = await admin<{ database: number; role: number }[]>`
    SELECT (SELECT oid FROM pg_database WHERE datname = ${name})::int AS database,
           (SELECT oid FROM pg_roles WHERE rolname = ${RUNNER_ROLE})::int AS role`;
  return {
    name,
    sql,
    runnerUrl: url.toString(),
    async runnerStatements() {
      const [row] = await admin<{ calls: string }[]>`
        SELECT coalesce(sum(calls), 0)::text AS calls FROM pg_stat_statements
        WHERE dbid = ${ids!.database} AND userid = ${ids!.role}`;
      return Number(row!.calls);
    },
    async transactions() {
      const [row] = await admin<{ count: string }[]>`
        SELECT (xact_commit + xact_rollback)::text AS count FROM pg_stat_database WHERE datname = ${name}`;
      return Number(row!.count);
    },
    async drop() {
      await sql.end({ timeout: 5 });
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres, { type Sql } from 'postgres';
import { type EmbeddedPostgresHandle, startEmbeddedPostgres } from '../../../apps/runner/src/embedded-postgres.js';
import { migrate } from '../../../apps/runner/src/migrate.js';

const DATABASE = 'mana_sync';

/**
 * A PostgreSQL cluster of its own that a suite may restart: the run's shared test cluster serves
 * every other test file at once and must never go down.
 */
export interface RestartablePostgres {
  /** Superuser URL of the migrated `mana_sync` database (stable across restarts: same port). */
  readonly url: string;
  /** A superuser client on that database; it reconnects by itself after a restart. */
  readonly sql: Sql;
  /**
   * Stops the cluster with a fast shutdown (SIGINT to the postmaster: every session is terminated
   * with an admin-shutdown error, new connections are refused), stays down for `downMs`, then starts
   * it again on the same port and data directory. Resolves once it accepts connections again.
   */
  restart(downMs: number): Promise<void>;
  /** Stops the cluster and deletes its data. */
  close(): Promise<void>;
}

/** Initialises and starts a throwaway cluster, creates `mana_sync` and applies the runner's migrations. */
export async function startRestartablePostgres(): Promise<RestartablePostgres> {
  // The cluster lives in the scratch directory, which startEmbeddedPostgres opens (traverse only) to
  // the postgres system user when running as root; `cluster.directory` says where it really is.
  const dataDir = await mkdtemp(join(tmpdir(), 'mana-ai-restartable-pg-'));
  let cluster: EmbeddedPostgresHandle;
  try {
    cluster = await startEmbeddedPostgres({ dataDir, persistent: true, fast: true });
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  const target = new URL(cluster.url);
  target.pathname = `/${DATABASE}`;
  const url = target.toString();
  const sql = postgres(url, { max: 4, onnotice: () => {} });
  try {
    const admin = postgres(cluster.url, { max: 1, onnotice: () => {} });
    try {
      await admin.unsafe(`CREATE DATABASE ${DATABASE}`);
    } finally {
      await admin.end();
    }
    await migrate(sql);
  } catch (error) {
    // Nothing may outlive a failed start: the exit hooks are detached, so nobody else stops it.
    await sql.end({ timeout: 1 }).catch(() => {});
    await cluster.stop().catch(() => {});
    await rm(cluster.directory, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  let running = true;
  return {
    url,
    sql,
    async restart(downMs) {
      await cluster.stop();
      running = false;
      await new Promise((resolve) => setTimeout(resolve, downMs));
      cluster = await startEmbeddedPostgres({ dataDir, persistent: true, fast: true, port: cluster.port });
      running = true;
    },
    async close() {
      await sql.end({ timeout: 1 }).catch(() => {});
      if (running) await cluster.stop().catch(() => {});
      await rm(cluster.directory, { recursive: true, force: true });
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

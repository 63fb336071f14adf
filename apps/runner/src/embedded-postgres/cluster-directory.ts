import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type Logger, describeError } from '@mana-ai/core';
import { EmbeddedPostgresError } from '../errors.js';
import { ensureRootDirectory } from './root-directory.js';
import { type SystemUser, userCanReach } from './system-user.js';

/** Where a cluster lives: `data/` (owned by the server's user) and `password` (0600) side by side. */
export interface ClusterDirectory {
  readonly path: string;
  /** True when the cluster lives outside the requested directory (root, private checkout). */
  readonly relocated: boolean;
  /** Paths this start created (outermost first): removed again when a fresh start fails. */
  readonly created: readonly string[];
}

/** Inputs of {@link prepareClusterDirectory}. */
export interface ClusterDirectoryRequest {
  /** Absolute path the caller asked for. */
  requested: string;
  persistent: boolean;
  /** The postgres system user when running as root. */
  user: SystemUser | undefined;
  /** Root's state directory for relocated clusters. */
  stateDir: string;
  logger: Logger;
}

/** Note left in the requested directory of a relocated persistent cluster, naming where it lives. */
export const LOCATION_NOTE = 'LOCATION';

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function createRequested(requested: string, mode: number): Promise<string | undefined> {
  try {
    return await mkdir(requested, { recursive: true, mode });
  } catch (error) {
    throw new EmbeddedPostgresError('prepare', `could not create the data directory ${requested} (${describeError(error)})`, { cause: error });
  }
}

/** The persistent home of a relocated cluster: the same for the same requested path, every start. */
export function relocatedHome(stateDir: string, requested: string): string {
  return join(stateDir, 'clusters', createHash('sha256').update(requested).digest('hex').slice(0, 16));
}

async function throwawayHome(user: SystemUser, stateDir: string): Promise<string> {
  // Prefer the temporary directory (emptied on reboot should a run crash), if postgres can reach it.
  const inTmp = await mkdtemp(join(tmpdir(), 'mana-ai-pg-'));
  await chmod(inTmp, 0o711);
  if (await userCanReach(user, inTmp)) return inTmp;
  await rm(inTmp, { recursive: true, force: true });
  await ensureRootDirectory(join(stateDir, 'clusters'), 0o711);
  const inState = await mkdtemp(join(stateDir, 'clusters', 'tmp-'));
  await chmod(inState, 0o711);
  return inState;
}

async function relocate(request: ClusterDirectoryRequest, user: SystemUser, created: string[]): Promise<ClusterDirectory> {
  const { requested, persistent, stateDir } = request;
  let path: string;
  if (persistent) {
    path = relocatedHome(stateDir, requested);
    await ensureRootDirectory(stateDir, 0o755);
    await ensureRootDirectory(dirname(path), 0o711);
    if (await mkdir(path, { mode: 0o711 }).then(() => true, () => false)) created.push(path);
    const note = `The embedded PostgreSQL of this directory lives in ${path}: the postgres system user cannot reach this directory.\n`;
    await writeFile(join(requested, LOCATION_NOTE), note, { mode: 0o644 });
    created.push(join(requested, LOCATION_NOTE));
  } else {
    path = await throwawayHome(user, stateDir);
    created.push(path);
  }
  if (!(await userCanReach(user, path))) {
    throw new EmbeddedPostgresError('prepare', `the postgres system user cannot reach ${path}`);
  }
  request.logger.warn(
    { dataDir: requested, location: path, persistent },
    'the postgres system user cannot reach the data directory (a private directory such as a home directory): the embedded PostgreSQL data lives in `location` instead',
  );
  return { path, relocated: true, created };
}

/**
 * The directory the cluster lives in. Normally the requested one. As root, PostgreSQL runs as the
 * postgres system user, which must traverse every directory down to the cluster: the requested
 * directory itself is opened to traverse-only (0711), directories above it are never changed.
 * When one of them is private (any home directory), a persistent cluster lives in
 * `<stateDir>/clusters/<hash of the requested path>` (the same place at every start, named in a
 * LOCATION note) and a throwaway one in a fresh temporary directory.
 */
export async function prepareClusterDirectory(request: ClusterDirectoryRequest): Promise<ClusterDirectory> {
  const { requested, user } = request;
  const created: string[] = [];
  const first = await createRequested(requested, user ? 0o711 : 0o700);
  if (first) created.push(first);
  if (!user) return { path: requested, relocated: false, created };

  const home = relocatedHome(request.stateDir, requested);
  if (request.persistent && (await exists(join(home, 'data', 'PG_VERSION')))) {
    request.logger.info({ dataDir: requested, location: home }, 'embedded PostgreSQL data lives in `location` (relocated: the postgres system user cannot reach the data directory)');
    return { path: home, relocated: true, created };
  }
  if (await userCanReach(user, dirname(requested))) {
    const { mode } = await stat(requested);
    if ((mode & 0o011) !== 0o011) await chmod(requested, (mode & 0o7777) | 0o011);
    if (await userCanReach(user, requested)) return { path: requested, relocated: false, created };
  }
  return relocate(request, user, created);
}

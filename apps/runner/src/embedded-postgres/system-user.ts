import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describeError } from '@mana-ai/core';
import { EmbeddedPostgresError } from '../errors.js';

const run = promisify(execFile);

/** The unprivileged account PostgreSQL runs as when the runner is root (PostgreSQL refuses root). */
export interface SystemUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

/** Name of the system account the embedded PostgreSQL runs as when the runner is root. */
export const POSTGRES_SYSTEM_USER = 'postgres';

/** True when this process runs as root (never on Windows, which has no uid). */
export function runningAsRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

async function lookup(name: string): Promise<SystemUser | undefined> {
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
    return { name, uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) };
  } catch {
    return undefined;
  }
}

async function create(name: string): Promise<void> {
  try {
    // shadow-utils (Debian, Ubuntu, RHEL); an existing group is fine (exit code 9).
    await run('groupadd', ['--system', name]).catch((error: { code?: unknown }) => {
      if (error.code !== 9) throw error;
    });
    await run('useradd', ['--system', '--gid', name, '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', name]);
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'ENOENT') throw error;
    // BusyBox (Alpine) has no useradd.
    await run('addgroup', ['-S', name]).catch(() => {});
    await run('adduser', ['-S', '-D', '-H', '-G', name, name]);
  }
}

/** The `postgres` system user, created (system account, no home, no login) when it is missing. */
export async function ensurePostgresSystemUser(): Promise<SystemUser> {
  const existing = await lookup(POSTGRES_SYSTEM_USER);
  if (existing) return existing;
  try {
    await create(POSTGRES_SYSTEM_USER);
  } catch (error) {
    throw new EmbeddedPostgresError('prepare', `PostgreSQL cannot run as root and the "${POSTGRES_SYSTEM_USER}" system user could not be created (${describeError(error)})`, {
      cause: error,
    });
  }
  const created = await lookup(POSTGRES_SYSTEM_USER);
  if (!created) throw new EmbeddedPostgresError('prepare', `the "${POSTGRES_SYSTEM_USER}" system user was created but cannot be looked up`);
  return created;
}

/**
 * True when `user` can search (traverse into) `path`: asked of the kernel by running `test -x` as
 * that user, exactly the way PostgreSQL will be spawned (no supplementary groups).
 */
export async function userCanReach(user: SystemUser, path: string): Promise<boolean> {
  try {
    await run('/bin/sh', ['-c', 'test -x "$1"', 'probe', path], { uid: user.uid, gid: user.gid, cwd: '/', env: { PATH: '/usr/bin:/bin' } });
    return true;
  } catch {
    return false;
  }
}

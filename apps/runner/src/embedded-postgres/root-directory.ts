import { lstat, mkdir } from 'node:fs/promises';
import { describeError } from '@mana-ai/core';
import { EmbeddedPostgresError } from '../errors.js';

/**
 * Creates `path` (and missing parents) with `mode`, then insists it is a real directory owned by
 * root that nobody else may write: binaries and cluster data staged in it run as the postgres user,
 * so a directory another user could swap contents in would hand them that account.
 */
export async function ensureRootDirectory(path: string, mode: number): Promise<void> {
  try {
    await mkdir(path, { recursive: true, mode });
  } catch (error) {
    throw new EmbeddedPostgresError('prepare', `could not create ${path} (${describeError(error)})`, { cause: error });
  }
  const info = await lstat(path);
  if (!info.isDirectory() || info.uid !== 0 || (info.mode & 0o022) !== 0) {
    throw new EmbeddedPostgresError('prepare', `${path} must be a directory owned by root that only root may write`);
  }
}

import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noopLogger } from '@mana-ai/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EMBEDDED_DATABASE, openDatabase } from './database.js';

describe('openDatabase', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'mana-ai-runner-embedded-'));
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('starts an embedded cluster with a mana_sync database and leaves no server or signal hooks behind when DATABASE_URL is unset', async () => {
    const signalsBefore = ['SIGINT', 'SIGTERM', 'beforeExit'].map((event) => process.listenerCount(event));
    const database = await openDatabase({ databaseUrl: undefined, concurrency: 2 }, noopLogger, { dataDir });
    try {
      expect(database.embedded).toBe(true);
      const [row] = await database.sql<{ name: string }[]>`SELECT current_database() AS name`;
      expect(row?.name).toBe(EMBEDDED_DATABASE);
      expect(['SIGINT', 'SIGTERM', 'beforeExit'].map((event) => process.listenerCount(event))).toEqual(signalsBefore);
      expect(existsSync(join(dataDir, 'data', 'postmaster.pid'))).toBe(true);
    } finally {
      await database.close();
    }
    expect(existsSync(join(dataDir, 'data', 'postmaster.pid'))).toBe(false);

    // Second boot on the same directory: reuses the cluster and its database.
    const again = await openDatabase({ databaseUrl: undefined, concurrency: 2 }, noopLogger, { dataDir });
    try {
      const [row] = await again.sql<{ one: number }[]>`SELECT 1 AS one`;
      expect(row?.one).toBe(1);
    } finally {
      await again.close();
      await again.close();
    }
    expect(existsSync(join(dataDir, 'data', 'postmaster.pid'))).toBe(false);
  }, 120_000);
});

import { createManualClock } from '@mana-ai/core';
import { manaCore } from '@mana-ai/core/fastify';
import { type TestDatabase, createTestDatabase } from '@mana-ai/test-postgres';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectAsRunner } from '../../test/helpers.js';
import { manaProjection } from './index.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());

describe('manaProjection plugin', () => {
  it('decorates manaProjection using the core event bus when registered after core', async () => {
    const sql = await connectAsRunner(db);
    const app = Fastify();
    await app.register(manaCore, { clock: createManualClock('2026-04-21T06:00:00.000Z') });
    await app.register(manaProjection, { sql, leaseMs: 1000 });
    await app.ready();
    const names: string[] = [];
    app.manaCore.events.onAny((name) => names.push(String(name)));
    const result = await app.manaProjection.refresh();
    expect(result.skipped).toBe(false);
    expect(names).toContain('refresh.done');
    await app.close();
  });

  it('fails to boot when the core plugin is missing', async () => {
    const app = Fastify();
    await expect(
      (async () => {
        await app.register(manaProjection, { sql: db.sql });
        await app.ready();
      })(),
    ).rejects.toThrow(/manaCore/);
    await app.close().catch(() => {});
  });
});

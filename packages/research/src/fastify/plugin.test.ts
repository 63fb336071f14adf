import { type ManaAiEvents, createEventBus, createManualClock } from '@mana-ai/core';
import { manaCore } from '@mana-ai/core/fastify';
import { type TestDatabase, createTestDatabase } from '@mana-ai/test-postgres';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeResearchServer, startFakeResearchServer } from '../testing/index.js';
import { manaResearch } from './index.js';

let db: TestDatabase;
let server: FakeResearchServer;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startFakeResearchServer({ serviceKey: 'k' });
});
afterAll(async () => {
  await server.close();
  await db.drop();
});

describe('manaResearch', () => {
  it('decorates manaResearch with a stage that emits on the core event bus when registered after core', async () => {
    const events = createEventBus<ManaAiEvents>();
    const names: string[] = [];
    events.onAny((name) => names.push(String(name)));
    const app = Fastify();
    await app.register(manaCore, { clock: createManualClock('2026-04-21T06:00:00.000Z'), events });
    await app.register(manaResearch, {
      sql: db.sql,
      deep: { baseUrl: server.url, serviceKey: 'k' },
      shallow: { baseUrl: server.url, auth: { type: 'none' } },
      stage: { deepResearchEnabled: true },
    });
    await app.ready();
    expect(app.manaResearch.deep?.provider).toBe('gemini-deep-research-max');
    expect(app.manaResearch.shallow).toBeDefined();
    const outcome = await app.manaResearch.stage.run({
      id: 'm-plugin',
      userId: 'u-1',
      objective: 'deep dive',
      conceptMarkdown: '',
    });
    expect(outcome).toMatchObject({ status: 'pending' });
    expect(await app.manaResearch.store.load('u-1', 'm-plugin')).toMatchObject({
      phase: 'running',
      submittedAt: Date.parse('2026-04-21T06:00:00.000Z'),
    });
    expect(names).toEqual(['research.submitted', 'research.pending-skip']);
    await app.close();
  });

  it('fails the boot with RESEARCH_INVALID_OPTIONS when deep research is enabled without a client', async () => {
    const app = Fastify();
    await app.register(manaCore, {});
    app.register(manaResearch, { sql: db.sql, stage: { deepResearchEnabled: true } });
    await expect(app.ready()).rejects.toMatchObject({ code: 'RESEARCH_INVALID_OPTIONS' });
    await app.close();
  });

  it('fails the boot when the core plugin is missing', async () => {
    const app = Fastify();
    app.register(manaResearch, { sql: db.sql });
    await expect(app.ready()).rejects.toThrow(/manaCore/);
    await app.close();
  });
});

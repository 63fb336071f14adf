import { type ManaAiEvents, createEventBus } from '@mana-ai/core';
import { manaCore } from '@mana-ai/core/fastify';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from '../testing/index.js';
import { manaPlanner } from './index.js';

let llm: FakeLlmServer;
beforeAll(async () => {
  llm = await createFakeLlmServer({ defaultReply: fakeReplies.text('nichts zu tun') });
});
afterAll(() => llm.close());

describe('manaPlanner plugin', () => {
  it('decorates manaPlanner built from the options and emits on the core event bus', async () => {
    const events = createEventBus<ManaAiEvents>();
    const names: string[] = [];
    events.onAny((name) => names.push(String(name)));
    const app = Fastify();
    await app.register(manaCore, { events });
    await app.register(manaPlanner, { locale: 'en', llm: { baseUrl: llm.url } });
    await app.ready();
    expect(app.manaPlanner.catalog.locale).toBe('en');
    const result = await app.manaPlanner.planMission({ mission: { title: 'T', objective: 'O', conceptMarkdown: '' } });
    expect(result).toMatchObject({ stopReason: 'assistant-stop', summary: 'nichts zu tun' });
    expect(names).toContain('planner.run.finished');
    await app.close();
  });

  it('fails to boot without the core plugin', async () => {
    const app = Fastify();
    const boot = async () => {
      await app.register(manaPlanner, { llm: { baseUrl: llm.url } });
      await app.ready();
    };
    await expect(boot()).rejects.toThrow(/manaCore/);
    await app.close();
  });
});

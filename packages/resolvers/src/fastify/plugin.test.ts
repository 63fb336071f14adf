import { type ManaAiEvents, createEventBus } from '@mana-ai/core';
import { manaCore } from '@mana-ai/core/fastify';
import Fastify from 'fastify';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { manaResolvers } from './index.js';

describe('manaResolvers plugin', () => {
  it('decorates the resolvers with the built-ins and the core event bus when registered', async () => {
    const events = createEventBus<ManaAiEvents>();
    const skipped: unknown[] = [];
    events.on('grant.skipped', (payload) => skipped.push(payload));
    // Never connects: nothing in this test touches the database.
    const sql = postgres('postgres://nobody@127.0.0.1:1/none', { max: 1 });
    const app = Fastify();
    await app.register(manaCore, { events });
    await app.register(manaResolvers, {
      sql,
      replayRecord: async (_userId, appId, table, id) => (appId === 'goals' ? { id, table, title: 'Laufen' } : null),
      crypto: { unwrapGrant: async () => ({ ok: false, reason: 'not-configured' }), decryptValue: async (_key, value) => value },
      goalsAppId: 'goals',
    });
    await app.ready();
    expect(app.manaResolvers.registry.modules()).toEqual([
      'goals',
      'notes',
      'tasks',
      'todo',
      'calendar',
      'journal',
      'kontext',
      'profile',
    ]);
    const results = await app.manaResolvers.resolve({
      userId: 'u1',
      missionId: 'm1',
      grant: { wrappedKey: 'x' },
      inputs: [
        { module: 'goals', table: 'companionGoals', id: 'g1' },
        { module: 'notes', table: 'notes', id: 'n1' },
      ],
    });
    expect(results).toEqual([
      { id: 'g1', module: 'goals', table: 'companionGoals', title: 'Laufen', content: 'Fortschritt: 0 / ? (unbekannt)' },
    ]);
    expect(skipped).toEqual([{ missionId: 'm1', reason: 'not-configured' }]);
    await app.close();
    await sql.end();
  });
});

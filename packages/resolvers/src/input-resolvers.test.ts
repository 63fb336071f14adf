import { createEventBus } from '@mana-ai/core';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { createCaptureLogger } from '../test/capture-logger.js';
import type { ResolverEvents } from './events.js';
import { createInputResolvers } from './input-resolvers.js';

// Never connects: these tests do not reach the audit.
const sql = postgres('postgres://nobody@127.0.0.1:1/none', { max: 1 });
afterAll(() => sql.end());

describe('createInputResolvers.buildContext', () => {
  it('returns a context without grant and emits nothing when the mission has no grant', async () => {
    const events = createEventBus<ResolverEvents>();
    const seen: unknown[] = [];
    events.onAny((name) => seen.push(name));
    const resolvers = createInputResolvers({
      sql,
      replayRecord: async () => null,
      crypto: {
        unwrapGrant: async () => {
          throw new Error('must not be called');
        },
        decryptValue: async (_key, value) => value,
      },
      events,
    });
    expect(await resolvers.buildContext({ userId: 'u1', missionId: 'm1', iterationId: 'i1', grant: null })).toEqual({
      userId: 'u1',
      missionId: 'm1',
      iterationId: 'i1',
    });
    expect(seen).toEqual([]);
  });

  it('skips the grant with reason unwrap-error when the crypto port throws', async () => {
    const events = createEventBus<ResolverEvents>();
    const skipped: ResolverEvents['grant.skipped'][] = [];
    events.on('grant.skipped', (payload) => skipped.push(payload));
    const logger = createCaptureLogger();
    const resolvers = createInputResolvers({
      sql,
      replayRecord: async () => null,
      crypto: {
        unwrapGrant: async () => {
          throw new Error('wrapped key AAAA');
        },
        decryptValue: async (_key, value) => value,
      },
      events,
      logger,
    });
    const context = await resolvers.buildContext({ userId: 'u1', missionId: 'm1', grant: { wrappedKey: 'AAAA' } });
    expect(context.grant).toBeUndefined();
    expect(skipped).toEqual([{ missionId: 'm1', reason: 'unwrap-error' }]);
    expect(logger.lines.join('\n')).not.toContain('AAAA');
  });
});

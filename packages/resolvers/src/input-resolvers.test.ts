import { createEventBus } from '@mana-ai/core';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { createCaptureLogger } from '../test/capture-logger.js';
import type { ResolverEvents } from './events.js';
import { DEFAULT_MAX_INPUTS_PER_MISSION, createInputResolvers } from './input-resolvers.js';
import type { ReplayRecord } from './ports.js';

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

describe('createInputResolvers.resolve', () => {
  const noCrypto = {
    unwrapGrant: async () => ({ ok: false as const, reason: 'not-configured' }),
    decryptValue: async (_key: CryptoKey, value: string) => value,
  };

  it('resolves only the first maxInputsPerMission inputs and reports the rest when a mission lists more', async () => {
    const events = createEventBus<ResolverEvents>();
    const dropped: ResolverEvents['inputs.dropped'][] = [];
    events.on('inputs.dropped', (payload) => dropped.push(payload));
    const logger = createCaptureLogger();
    const replayed: string[] = [];
    const replayRecord: ReplayRecord = async (_userId, _appId, _table, recordId) => {
      replayed.push(recordId);
      return { title: `Goal ${recordId}` };
    };
    const resolvers = createInputResolvers({ sql, replayRecord, crypto: noCrypto, events, logger }, { maxInputsPerMission: 3 });
    const inputs = Array.from({ length: 10 }, (_, index) => ({ module: 'goals', table: 'goals', id: `g${index}` }));
    const resolved = await resolvers.resolve({ userId: 'u1', missionId: 'm1', inputs });
    expect(resolved.map((input) => input.id)).toEqual(['g0', 'g1', 'g2']);
    expect(replayed.sort()).toEqual(['g0', 'g1', 'g2']);
    expect(dropped).toEqual([{ missionId: 'm1', listed: 10, dropped: 7, reason: 'max-inputs-per-mission' }]);
    expect(logger.lines.join('\n')).toContain('mission inputs beyond the bound not resolved');
  });

  it('bounds inputs at DEFAULT_MAX_INPUTS_PER_MISSION when no bound is given', async () => {
    let replays = 0;
    const resolvers = createInputResolvers({
      sql,
      replayRecord: async () => {
        replays += 1;
        return null;
      },
      crypto: noCrypto,
    });
    const inputs = Array.from({ length: 5000 }, (_, index) => ({ module: 'goals', table: 'goals', id: `g${index}` }));
    await resolvers.resolve({ userId: 'u1', missionId: 'm1', inputs });
    expect(DEFAULT_MAX_INPUTS_PER_MISSION).toBe(200);
    expect(replays).toBe(200);
  });

  it('refuses a bound that is not a positive integer', () => {
    for (const maxInputsPerMission of [0, -1, 1.5, Number.NaN]) {
      expect(() => createInputResolvers({ sql, replayRecord: async () => null, crypto: noCrypto }, { maxInputsPerMission })).toThrow(
        expect.objectContaining({ code: 'RESOLVERS_INVALID_ARGUMENT' }),
      );
    }
  });
});

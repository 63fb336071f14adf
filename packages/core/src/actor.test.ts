import { describe, expect, it } from 'vitest';
import {
  USER_ACTOR,
  isAiActor,
  isFromMissionRunner,
  isSystemActor,
  isUserActor,
  makeAgentActor,
  makeSystemActor,
  makeUserActor,
  normalizeActor,
  originFromActor,
} from './actor.js';

describe('actor factories', () => {
  it('creates frozen actors with keys in wire order', () => {
    const actor = makeAgentActor({ agentId: 'a-1', displayName: 'Mana', missionId: 'm-1', iterationId: 'i-1', rationale: 'r' });
    expect(JSON.stringify(actor)).toBe(
      '{"kind":"ai","principalId":"a-1","displayName":"Mana","missionId":"m-1","iterationId":"i-1","rationale":"r"}',
    );
    expect(Object.isFrozen(actor)).toBe(true);
    expect(JSON.stringify(makeUserActor('u-1'))).toBe('{"kind":"user","principalId":"u-1","displayName":"Du"}');
    expect(USER_ACTOR.principalId).toBe('legacy:user');
  });

  it('gives system actors their known display name when none is given', () => {
    expect(makeSystemActor('system:mission-runner').displayName).toBe('Mission-Runner');
    expect(makeSystemActor('system:projection', 'Custom').displayName).toBe('Custom');
    expect(makeSystemActor('system:unknown').displayName).toBeUndefined();
  });
});

describe('normalizeActor', () => {
  it('maps non-objects to the legacy user with an unknown name', () => {
    expect(normalizeActor(null)).toEqual({ kind: 'user', principalId: 'legacy:user', displayName: 'Unbekannt' });
    expect(normalizeActor('user')).toEqual({ kind: 'user', principalId: 'legacy:user', displayName: 'Unbekannt' });
  });

  it('keeps complete actors as they are', () => {
    const raw = { kind: 'ai', principalId: 'a', displayName: 'A', missionId: 'm', iterationId: 'i', rationale: 'x' };
    expect(normalizeActor(raw)).toBe(raw);
  });

  it('upgrades the legacy shapes from before the identity refactor', () => {
    expect(normalizeActor({ kind: 'user' })).toEqual({ kind: 'user', principalId: 'legacy:user', displayName: 'Du' });
    expect(normalizeActor({ kind: 'ai', missionId: 'm-1', iterationId: 'i-1', rationale: 'why' })).toEqual({
      kind: 'ai',
      principalId: 'legacy:ai-default',
      displayName: 'Unbekannt',
      missionId: 'm-1',
      iterationId: 'i-1',
      rationale: 'why',
    });
    expect(normalizeActor({ kind: 'system', source: 'mission-runner' })).toEqual({
      kind: 'system',
      principalId: 'system:mission-runner',
      displayName: 'Mission-Runner',
    });
    expect(normalizeActor({ kind: 'system' })).toEqual({ kind: 'system', principalId: 'legacy:system', displayName: undefined });
    expect(normalizeActor({ kind: 'robot' })).toEqual({ kind: 'user', principalId: 'legacy:user', displayName: 'Unbekannt' });
  });
});

describe('actor predicates', () => {
  it('tells the kinds apart and handles undefined', () => {
    const runner = makeSystemActor('system:mission-runner');
    expect(isSystemActor(runner) && isFromMissionRunner(runner)).toBe(true);
    expect(isFromMissionRunner(makeSystemActor('system:rule'))).toBe(false);
    expect(isUserActor(undefined) || isAiActor(undefined) || isSystemActor(undefined)).toBe(false);
  });

  it('derives the field origin from the actor', () => {
    expect(originFromActor(makeUserActor('u'))).toBe('user');
    expect(originFromActor(makeAgentActor({ agentId: 'a', displayName: 'A', missionId: 'm', iterationId: 'i', rationale: '' }))).toBe('agent');
    expect(originFromActor(makeSystemActor('system:migration'))).toBe('migration');
    expect(originFromActor(makeSystemActor('system:rule'))).toBe('system');
  });
});

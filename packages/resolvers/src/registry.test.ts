import { type ResolvedInput, createEventBus } from '@mana-ai/core';
import { describe, expect, it } from 'vitest';
import type { ResolverEvents } from './events.js';
import type { ResolverContext } from './ports.js';
import { createResolverRegistry } from './registry.js';
import { createCaptureLogger } from '../test/capture-logger.js';

const context: ResolverContext = { userId: 'u1', missionId: 'm1' };
const input = (module: string, id: string): ResolvedInput => ({ id, module, table: module, content: `${module}:${id}` });
const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('createResolverRegistry', () => {
  it('returns the output of a registered resolver when its module is referenced', async () => {
    const registry = createResolverRegistry();
    registry.register('notes', async (ref) => input(ref.module, ref.id));
    expect(await registry.resolve([{ module: 'notes', table: 'notes', id: 'n1' }], context)).toEqual([input('notes', 'n1')]);
  });

  it('skips refs when their module has no resolver', async () => {
    const registry = createResolverRegistry();
    registry.register('notes', async (ref) => input(ref.module, ref.id));
    const refs = [
      { module: 'notes', table: 'notes', id: 'a' },
      { module: 'unknown', table: 'x', id: 'b' },
      { module: 'notes', table: 'notes', id: 'c' },
    ];
    expect((await registry.resolve(refs, context)).map((result) => result.id)).toEqual(['a', 'c']);
  });

  it('yields nothing and emits resolver.failed without the message when a resolver throws', async () => {
    const events = createEventBus<ResolverEvents>();
    const failures: ResolverEvents['resolver.failed'][] = [];
    events.on('resolver.failed', (payload) => failures.push(payload));
    const logger = createCaptureLogger();
    const registry = createResolverRegistry({ events, logger });
    registry.register('boom', async () => {
      throw new TypeError('secret record text');
    });
    registry.register('notes', async (ref) => input(ref.module, ref.id));
    const results = await registry.resolve(
      [
        { module: 'boom', table: 'x', id: '1' },
        { module: 'notes', table: 'notes', id: '2' },
      ],
      context,
    );
    expect(results).toEqual([input('notes', '2')]);
    expect(failures).toEqual([{ missionId: 'm1', module: 'boom', error: 'TypeError' }]);
    expect(logger.lines.join('\n')).not.toContain('secret record text');
  });

  it('runs resolvers in parallel and keeps input order when later refs finish first', async () => {
    const registry = createResolverRegistry();
    let inFlight = 0;
    let maxInFlight = 0;
    registry.register('slow', async (ref) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await delay(Number(ref.id) === 1 ? 30 : 10);
      inFlight--;
      return input('slow', ref.id);
    });
    registry.register('fast', async (ref) => input('fast', ref.id));
    const results = await registry.resolve(
      [
        { module: 'slow', table: 's', id: '1' },
        { module: 'slow', table: 's', id: '2' },
        { module: 'fast', table: 'f', id: '3' },
      ],
      context,
    );
    expect(maxInFlight).toBe(2);
    expect(results.map((result) => result.id)).toEqual(['1', '2', '3']);
  });

  it('stops resolving a module when it is unregistered', async () => {
    const registry = createResolverRegistry();
    registry.register('notes', async (ref) => input(ref.module, ref.id));
    expect(registry.modules()).toEqual(['notes']);
    expect(registry.unregister('notes')).toBe(true);
    expect(registry.unregister('notes')).toBe(false);
    expect(await registry.resolve([{ module: 'notes', table: 'notes', id: 'n1' }], context)).toEqual([]);
  });

  it('returns an empty list when there are no refs', async () => {
    expect(await createResolverRegistry().resolve([], context)).toEqual([]);
  });
});

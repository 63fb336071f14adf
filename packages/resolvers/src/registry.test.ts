import { type ResolvedInput, createEventBus } from '@mana-ai/core';
import { describe, expect, it } from 'vitest';
import type { ResolverEvents } from './events.js';
import type { ResolverContext } from './ports.js';
import { RESOLVE_PARALLELISM, createResolverRegistry } from './registry.js';
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

  it('resolves at most RESOLVE_PARALLELISM refs at a time when a mission lists many', async () => {
    const registry = createResolverRegistry();
    let inFlight = 0;
    let maxInFlight = 0;
    registry.register('slow', async (ref) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await delay(2);
      inFlight--;
      return input('slow', ref.id);
    });
    const refs = Array.from({ length: 40 }, (_, index) => ({ module: 'slow', table: 's', id: String(index) }));
    const results = await registry.resolve(refs, context);
    expect(maxInFlight).toBe(RESOLVE_PARALLELISM);
    expect(results.map((result) => result.id)).toEqual(refs.map((ref) => ref.id));
  });

  it('starts no further ref and rejects with the reason when the signal aborts', async () => {
    const registry = createResolverRegistry();
    const controller = new AbortController();
    const started: string[] = [];
    registry.register('slow', async (ref) => {
      started.push(ref.id);
      if (started.length === 6) controller.abort(new Error('run exceeded 50 ms'));
      await delay(2);
      return input('slow', ref.id);
    });
    const refs = Array.from({ length: 40 }, (_, index) => ({ module: 'slow', table: 's', id: String(index) }));
    await expect(registry.resolve(refs, context, controller.signal)).rejects.toThrow('run exceeded 50 ms');
    expect(started).toHaveLength(6);
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

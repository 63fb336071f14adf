import { describe, expect, it } from 'vitest';
import { createEventBus } from './events.js';

type Events = { 'mission.skipped': { missionId: string; reason: string }; 'tick.done': { planned: number } };

describe('createEventBus', () => {
  it('delivers payloads to the listeners of that event and to catch-all listeners', () => {
    const bus = createEventBus<Events>();
    const seen: string[] = [];
    bus.on('mission.skipped', (payload) => seen.push(`skip:${payload.missionId}`));
    bus.on('tick.done', (payload) => seen.push(`done:${payload.planned}`));
    bus.onAny((name) => seen.push(`any:${String(name)}`));
    bus.emit('mission.skipped', { missionId: 'm-1', reason: 'agent-paused' });
    bus.emit('tick.done', { planned: 2 });
    expect(seen).toEqual(['skip:m-1', 'any:mission.skipped', 'done:2', 'any:tick.done']);
  });

  it('stops delivering after unsubscribe', () => {
    const bus = createEventBus<Events>();
    let count = 0;
    const off = bus.on('tick.done', () => count++);
    bus.emit('tick.done', { planned: 1 });
    off();
    bus.emit('tick.done', { planned: 1 });
    expect(count).toBe(1);
  });

  it('keeps delivering to other listeners when one throws and reports the error', () => {
    const errors: string[] = [];
    const bus = createEventBus<Events>({ onListenerError: (_error, name) => errors.push(name) });
    let delivered = false;
    bus.on('tick.done', () => {
      throw new Error('boom');
    });
    bus.on('tick.done', () => {
      delivered = true;
    });
    expect(() => bus.emit('tick.done', { planned: 0 })).not.toThrow();
    expect(delivered).toBe(true);
    expect(errors).toEqual(['tick.done']);
  });
});

import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { type Clock, systemClock } from '../clock.js';
import { type EventBus, type ManaAiEvents, createEventBus } from '../events.js';

/** What the core plugin decorates the instance with as `manaCore`. */
export interface ManaCoreDecorator {
  /** The clock every other plugin reads time from. */
  clock: Clock;
  /** The event bus packages emit into and the runner's metrics listen on. */
  events: EventBus<ManaAiEvents>;
}

/** Options of the core plugin. */
export interface ManaCorePluginOptions {
  clock?: Clock;
  events?: EventBus<ManaAiEvents>;
}

declare module 'fastify' {
  interface FastifyInstance {
    manaCore: ManaCoreDecorator;
  }
}

async function manaCorePlugin(fastify: FastifyInstance, options: ManaCorePluginOptions): Promise<void> {
  fastify.decorate('manaCore', {
    clock: options.clock ?? systemClock,
    events: options.events ?? createEventBus<ManaAiEvents>(),
  });
}

/** Fastify plugin that decorates `manaCore` (clock and event bus) for the other mana-ai plugins. */
export const manaCore = fp(manaCorePlugin, { name: '@mana-ai/core', fastify: '5.x', decorators: {} });
export default manaCore;

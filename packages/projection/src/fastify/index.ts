import type { SqlClient } from '@mana-ai/core';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
// Loads the `manaCore` decorator type.
import type {} from '@mana-ai/core/fastify';
import { type Projection, type ProjectionOptions, createProjection } from '../projection.js';

/** Options of the projection plugin: the shared client plus {@link ProjectionOptions}. */
export interface ManaProjectionPluginOptions extends ProjectionOptions {
  /** The runner's postgres.js client (not closed by the plugin: its creator owns it). */
  sql: SqlClient;
}

declare module 'fastify' {
  interface FastifyInstance {
    manaProjection: Projection;
  }
}

async function manaProjectionPlugin(fastify: FastifyInstance, options: ManaProjectionPluginOptions): Promise<void> {
  const { sql, ...projectionOptions } = options;
  const projection = createProjection(
    {
      sql,
      // The core bus is untyped by design; the projection only emits its own event names on it.
      events: fastify.manaCore.events,
      logger: fastify.log,
    },
    projectionOptions,
  );
  fastify.decorate('manaProjection', projection);
}

/**
 * Fastify plugin that decorates `manaProjection` (refresh, claims, write-back, replay, read API)
 * over the given `sql` client. Needs the `@mana-ai/core` plugin for the event bus.
 */
export const manaProjection = fp(manaProjectionPlugin, {
  name: '@mana-ai/projection',
  fastify: '5.x',
  dependencies: ['@mana-ai/core'],
  decorators: { fastify: ['manaCore'] },
});
export default manaProjection;

import type { Logger, SqlClient } from '@mana-ai/core';
// Loads the `manaCore` decorator type.
import type {} from '@mana-ai/core/fastify';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { type InputResolvers, createInputResolvers } from '../input-resolvers.js';
import type { ReplayRecord, ResolverCrypto } from '../ports.js';

/** Options of the resolvers plugin. */
export interface ManaResolversPluginOptions {
  /** The runner's Postgres client (audit rows are written under RLS through it). */
  sql: SqlClient;
  /** Single-record replay, from `@mana-ai/projection`. */
  replayRecord: ReplayRecord;
  /** Grant unwrap and value decryption, from `@mana-ai/crypto`. */
  crypto: ResolverCrypto;
  /** Sync app id of the plaintext goals (default `goals`). */
  goalsAppId?: string;
  /** Inputs of one mission resolved at most (default 200, `DEFAULT_MAX_INPUTS_PER_MISSION`). */
  maxInputsPerMission?: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    manaResolvers: InputResolvers;
  }
}

async function manaResolversPlugin(fastify: FastifyInstance, options: ManaResolversPluginOptions): Promise<void> {
  const resolvers = createInputResolvers(
    {
      sql: options.sql,
      replayRecord: options.replayRecord,
      crypto: options.crypto,
      logger: fastify.log.child({ component: 'resolvers' }) as unknown as Logger,
      events: fastify.manaCore.events,
    },
    { ...(options.goalsAppId ? { goalsAppId: options.goalsAppId } : {}), maxInputsPerMission: options.maxInputsPerMission },
  );
  fastify.decorate('manaResolvers', resolvers);
}

/**
 * Fastify plugin that decorates `manaResolvers` (registry with the built-in resolvers, context
 * building, decrypt audit). Needs the `@mana-ai/core` plugin (events); registers no routes.
 */
export const manaResolvers = fp(manaResolversPlugin, {
  name: '@mana-ai/resolvers',
  fastify: '5.x',
  dependencies: ['@mana-ai/core'],
  decorators: { fastify: ['manaCore'] },
});
export default manaResolvers;

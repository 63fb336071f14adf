
import type {} from '@mana-ai/core/fastify';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { type Planner, type PlannerDeps, type PlannerOptions, createPlanner } from '../planner.js';

/** Options of the planner plugin: the {@link PlannerOptions} plus optional collaborators. */
export interface ManaPlannerPluginOptions extends PlannerOptions {
  /** Collaborators; `events` and `clock` default to the `manaCore` decorator's. */
  deps?: PlannerDeps;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The mission planner (`@mana-ai/planner`). */
    manaPlanner: Planner;
  }
}

async function manaPlannerPlugin(fastify: FastifyInstance, options: ManaPlannerPluginOptions): Promise<void> {
  const { deps = {}, ...plannerOptions } = options;
  const core = fastify.manaCore;
  const planner = createPlanner(
    {
      ...deps,
      events: deps.events ?? core.events,
      clock: deps.clock ?? core.clock,
      logger: deps.logger ?? fastify.log,
    },
    plannerOptions,
  );
  fastify.decorate('manaPlanner', planner);
}

/** Fastify plugin that decorates `manaPlanner`; register `@mana-ai/core/fastify` first. */
export const manaPlanner = fp(manaPlannerPlugin, {
  name: '@mana-ai/planner',
  fastify: '5.x',
  dependencies: ['@mana-ai/core'],
  decorators: { fastify: ['manaCore'] },
});
export default manaPlanner;

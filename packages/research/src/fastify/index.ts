import type { Logger, SqlClient } from '@mana-ai/core';
// Type-only: brings in the `manaCore` decorator's declaration.
import type {} from '@mana-ai/core/fastify';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { type DeepResearchClient, type DeepResearchOptions, createDeepResearchClient } from '../deep-research.js';
import type { FetchLike } from '../http.js';
import { type ResearchJobStore, createResearchJobStore } from '../research-job-store.js';
import { type ResearchStage, type ResearchStageOptions, createResearchStage } from '../research-stage.js';
import {
  type ShallowResearchClient,
  type ShallowResearchOptions,
  createShallowResearchClient,
} from '../shallow-research.js';

/** What the research plugin decorates the instance with as `manaResearch`. */
export interface ManaResearchDecorator {
  /** The per-tick research stage (run, then acknowledge after write-back). */
  stage: ResearchStage;
  /** The deep-research job store. */
  store: ResearchJobStore;
  /** The shallow client, when configured. */
  shallow: ShallowResearchClient | undefined;
  /** The deep client, when configured. */
  deep: DeepResearchClient | undefined;
}

/** Options of the research plugin. */
export interface ManaResearchPluginOptions {
  /** The runner's postgres.js client (not closed by the plugin). */
  sql: SqlClient;
  /** Default: the global `fetch`. */
  fetch?: FetchLike;
  /** Shallow research (mana-api news-research); omitted = no shallow research. */
  shallow?: ShallowResearchOptions;
  /** Deep research (mana-research); omitted = no deep research. */
  deep?: DeepResearchOptions;
  /** Stage options (`deepResearchEnabled`, triggers, `maxJobAgeMs`, `maxFailedPolls`). */
  stage?: ResearchStageOptions;
}

declare module 'fastify' {
  interface FastifyInstance {
    manaResearch: ManaResearchDecorator;
  }
}

async function manaResearchPlugin(fastify: FastifyInstance, options: ManaResearchPluginOptions): Promise<void> {
  const logger = fastify.log.child({ module: '@mana-ai/research' }) as unknown as Logger;
  const fetchDeps = options.fetch ? { fetch: options.fetch } : {};
  const shallow = options.shallow ? createShallowResearchClient({ ...fetchDeps, logger }, options.shallow) : undefined;
  const deep = options.deep ? createDeepResearchClient(fetchDeps, options.deep) : undefined;
  const store = createResearchJobStore({ sql: options.sql });
  const stage = createResearchStage(
    {
      store,
      ...(deep ? { deep } : {}),
      ...(shallow ? { shallow } : {}),
      clock: fastify.manaCore.clock,
      logger,
      // The core bus is untyped; the research events are one slice of it.
      events: fastify.manaCore.events,
    },
    options.stage,
  );
  fastify.decorate('manaResearch', { stage, store, shallow, deep });
}

/**
 * Fastify plugin that decorates `manaResearch` (research stage, job store, clients). Needs the
 * `@mana-ai/core` plugin for the clock and the event bus. Invalid options fail the boot with a
 * `ResearchError` (`RESEARCH_INVALID_OPTIONS`).
 */
export const manaResearch = fp(manaResearchPlugin, {
  name: '@mana-ai/research',
  fastify: '5.x',
  dependencies: ['@mana-ai/core'],
  decorators: { fastify: ['manaCore'] },
});
export default manaResearch;

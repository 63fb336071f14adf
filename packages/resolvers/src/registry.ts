import { type EventChannel, type Logger, type MissionInputRef, type ResolvedInput, noopLogger } from '@mana-ai/core';
import { errorLabel } from './errors.js';
import type { ResolverEvents } from './events.js';
import type { InputResolver, ResolverContext } from './ports.js';

/** Collaborators of {@link createResolverRegistry}. */
export interface ResolverRegistryDeps {
  logger?: Logger;
  events?: EventChannel<ResolverEvents>;
}

/**
 * How many inputs of one mission are resolved at a time: each takes a few statements, and a mission
 * must not queue hundreds of them on the shared pool ahead of other missions and health checks.
 */
export const RESOLVE_PARALLELISM = 4;

/** Input resolvers keyed by `ref.module`. */
export interface ResolverRegistry {
  /** Registers (or replaces) the resolver of `module`. */
  register(module: string, resolver: InputResolver): void;
  /** Removes the resolver of `module`; true when there was one. */
  unregister(module: string): boolean;
  /** The registered module names, in registration order. */
  modules(): string[];
  /**
   * Resolves the refs, {@link RESOLVE_PARALLELISM} at a time, and returns the non-null results in
   * ref order. Refs without a resolver yield nothing; a resolver that throws yields nothing and
   * emits `resolver.failed`. Once `signal` aborts no further ref is started and the call rejects
   * with the abort reason.
   */
  resolve(refs: readonly MissionInputRef[], context: ResolverContext, signal?: AbortSignal): Promise<ResolvedInput[]>;
}

/** Creates an empty {@link ResolverRegistry}. */
export function createResolverRegistry(deps: ResolverRegistryDeps = {}): ResolverRegistry {
  const logger = deps.logger ?? noopLogger;
  const resolvers = new Map<string, InputResolver>();
  const resolveOne = async (ref: MissionInputRef, context: ResolverContext): Promise<ResolvedInput | null> => {
    const resolver = resolvers.get(ref.module);
    if (!resolver) return null;
    try {
      return await resolver(ref, context);
    } catch (error) {
      const label = errorLabel(error);
      logger.error({ missionId: context.missionId, module: ref.module, error: label }, 'input resolver threw');
      deps.events?.emit('resolver.failed', { missionId: context.missionId, module: ref.module, error: label });
      return null;
    }
  };
  return {
    register(module, resolver) {
      resolvers.set(module, resolver);
    },
    unregister(module) {
      return resolvers.delete(module);
    },
    modules() {
      return [...resolvers.keys()];
    },
    async resolve(refs, context, signal) {
      const results = new Array<ResolvedInput | null>(refs.length).fill(null);
      let next = 0;
      const work = async (): Promise<void> => {
        for (let index = next++; index < refs.length; index = next++) {
          signal?.throwIfAborted();
          results[index] = await resolveOne(refs[index] as MissionInputRef, context);
        }
      };
      await Promise.all(Array.from({ length: Math.min(RESOLVE_PARALLELISM, refs.length) }, work));
      return results.filter((result): result is ResolvedInput => result !== null);
    },
  };
}

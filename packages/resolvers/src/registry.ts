import { type EventChannel, type Logger, type MissionInputRef, type ResolvedInput, noopLogger } from '@mana-ai/core';
import { errorLabel } from './errors.js';
import type { ResolverEvents } from './events.js';
import type { InputResolver, ResolverContext } from './ports.js';

/** Collaborators of {@link createResolverRegistry}. */
export interface ResolverRegistryDeps {
  logger?: Logger;
  events?: EventChannel<ResolverEvents>;
}

/** Input resolvers keyed by `ref.module`. */
export interface ResolverRegistry {
  /** Registers (or replaces) the resolver of `module`. */
  register(module: string, resolver: InputResolver): void;
  /** Removes the resolver of `module`; true when there was one. */
  unregister(module: string): boolean;
  /** The registered module names, in registration order. */
  modules(): string[];
  /**
   * Resolves all refs in parallel and returns the non-null results in ref order. Refs without a
   * resolver yield nothing; a resolver that throws yields nothing and emits `resolver.failed`.
   */
  resolve(refs: readonly MissionInputRef[], context: ResolverContext): Promise<ResolvedInput[]>;
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
    async resolve(refs, context) {
      const results = await Promise.all(refs.map((ref) => resolveOne(ref, context)));
      return results.filter((result): result is ResolvedInput => result !== null);
    },
  };
}

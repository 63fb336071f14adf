import type { InputsPort } from '@mana-ai/core';
import type { InputResolvers } from './input-resolvers.js';

/**
 * Core's {@link InputsPort} over {@link InputResolvers}: pass it as `ports.inputs` to core's
 * `createDispatcher`. Each mission resolves its inputs with its own grant, and the decrypt audit
 * rows carry the run's iteration id; the run's abort signal stops the resolution.
 */
export function createInputsPort(resolvers: InputResolvers): InputsPort {
  return {
    resolve: ({ mission, iterationId, signal }) =>
      resolvers.resolve({ userId: mission.userId, missionId: mission.id, iterationId, grant: mission.grant, inputs: mission.inputs, signal }),
  };
}

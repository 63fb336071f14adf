import type { ResearchJobStore } from '../research-job-store.js';
import { type ActiveResearchState, IDLE_RESEARCH_STATE, type ResearchState } from '../research-machine.js';

/** A {@link ResearchJobStore} in memory, for consumers' unit tests; `jobs` is keyed `<userId>/<missionId>` (`jobKeys` splits a key at its first `/`). */
export interface MemoryResearchJobStore extends ResearchJobStore {
  readonly jobs: Map<string, ActiveResearchState>;
}

/** Creates a {@link MemoryResearchJobStore} (structured-cloned states, like a round trip through the table). */
export function createMemoryResearchJobStore(): MemoryResearchJobStore {
  const jobs = new Map<string, ActiveResearchState>();
  const key = (userId: string, missionId: string): string => `${userId}/${missionId}`;
  return {
    jobs,
    async load(userId, missionId): Promise<ResearchState> {
      const job = jobs.get(key(userId, missionId));
      return job ? structuredClone(job) : IDLE_RESEARCH_STATE;
    },
    async jobKeys(maxKeys) {
      const keys = [...jobs.keys()].map((stored) => {
        const slash = stored.indexOf('/');
        return { userId: stored.slice(0, slash), missionId: stored.slice(slash + 1) };
      });
      return { keys: keys.slice(0, Math.max(maxKeys, 0)), more: keys.length > maxKeys };
    },
    async save(userId, missionId, state) {
      jobs.set(key(userId, missionId), structuredClone(state));
    },
    async delete(userId, missionId, taskId) {
      const current = jobs.get(key(userId, missionId));
      if (!current || (taskId !== undefined && current.taskId !== taskId)) return false;
      return jobs.delete(key(userId, missionId));
    },
  };
}

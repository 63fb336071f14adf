import type { Agent, MissionClaim, MissionStorePort } from '@mana-ai/core';
import type { ClaimedSnapshot, MissionKey } from './claims.js';
import { deriveIterationId } from './iteration-id.js';
import type { Projection } from './projection.js';

/** Options of {@link createMissionStore}. */
export interface MissionStoreOptions {
  /** This instance's lease owner: unique per running process (e.g. `hostname:pid:random`). */
  owner: string;
}

/** How long a looked-up agent is reused: an agent paused or archived by its user must stop its missions within seconds. */
const AGENT_CACHE_MS = 2000;
/** Agents cached at most (oldest dropped first). */
const AGENT_CACHE_MAX = 10_000;

const keyOf = (userId: string, missionId: string): string => JSON.stringify([userId, missionId]);

const keysOf = (claims: readonly { mission: { userId: string; id: string } }[]): MissionKey[] =>
  claims.map(({ mission }) => ({ userId: mission.userId, missionId: mission.id }));

/**
 * Core's {@link MissionStorePort} over a {@link Projection}: pass it as `ports.store` to core's
 * `createDispatcher`. Agents are looked up once per user and agent for two seconds (a failed lookup
 * is not cached), iteration ids are derived from (mission, due slot), and every time comparison
 * happens on the database's clock inside the projection. A claimed batch whose agent lookup fails
 * is released at once rather than held until its leases expire. The snapshot each claim read is kept
 * with its {@link MissionClaim} (weakly: nothing stays behind when a run ends without writing) and
 * handed to the first write-back of that claim, which then skips its read (the projection's fast path);
 * a heartbeat's renewal moves it to the row's new version when the renewal was the only change since.
 */
export function createMissionStore(projection: Projection, options: MissionStoreOptions): MissionStorePort {
  const { owner } = options;
  const claimedSnapshots = new WeakMap<MissionClaim, ClaimedSnapshot>();
  const agents = new Map<string, { agent: Promise<Agent | null>; at: number }>();
  const agentOf = (userId: string, agentId: string | undefined): Promise<Agent | null> => {
    if (!agentId) return Promise.resolve(null);
    const key = keyOf(userId, agentId);
    const now = performance.now();
    const cached = agents.get(key);
    if (cached && now - cached.at < AGENT_CACHE_MS) return cached.agent;
    const agent = projection.loadAgent(userId, agentId);
    agents.set(key, { agent, at: now });
    agent.catch(() => agents.delete(key));
    if (agents.size > AGENT_CACHE_MAX) agents.delete(agents.keys().next().value as string);
    return agent;
  };
  return {
    async refresh() {
      const result = await projection.refresh();
      return {
        rowsApplied: result.rowsApplied,
        newSnapshots: result.newSnapshots,
        updatedSnapshots: result.updatedSnapshots,
        ...(result.skipped ? { skipped: true } : {}),
      };
    },
    async claimDue({ limit }) {
      const claimed = await projection.claimDue({ owner, limit });
      try {
        return await Promise.all(
          claimed.map(async ({ mission, dueSlot, snapshot }) => {
            const [agent, iterationId] = await Promise.all([agentOf(mission.userId, mission.agentId), deriveIterationId(mission.id, dueSlot)]);
            const claim: MissionClaim = { mission, agent, dueSlot, iterationId };
            claimedSnapshots.set(claim, snapshot);
            return claim;
          }),
        );
      } catch (error) {
        // The dispatcher never sees this batch: hand it all back rather than hold it until the leases expire.
        await projection.release(owner, keysOf(claimed)).catch(() => {});
        throw error;
      }
    },
    tokensUsedLast24h: (userId, agentId) => projection.tokenUsageLast24h(userId, agentId),
    async writeIteration(claim, request) {
      // Used once: a retried write reads, as the first one may have committed and changed the snapshot.
      const claimed = claimedSnapshots.get(claim);
      claimedSnapshots.delete(claim);
      const result = await projection.writeIteration({
        userId: claim.mission.userId,
        missionId: claim.mission.id,
        dueSlot: claim.dueSlot,
        iteration: request.iteration,
        actor: request.actor,
        owner,
        tokenUsage: request.tokensUsed > 0 ? { agentId: request.actor.principalId, tokens: request.tokensUsed } : undefined,
        claimed,
      });
      return { written: !result.duplicate };
    },
    async recordTokenUsage(claim, agentId, tokensUsed) {
      // With the claim's iteration: a write-back of it that committed (its answer lost) recorded this spend already.
      await projection.recordTokenUsage({
        userId: claim.mission.userId,
        agentId,
        missionId: claim.mission.id,
        tokens: tokensUsed,
        iterationId: claim.iterationId,
      });
    },
    async release(claim, releaseOptions) {
      if (releaseOptions?.retryAfterMs === undefined) await projection.release(owner, keysOf([claim]));
      // Held, not released: the lease now ends after the retry delay (database time).
      else await projection.renew({ owner, missions: keysOf([claim]), leaseMs: releaseOptions.retryAfterMs });
    },
    async renew(claims) {
      const held = new Map((await projection.renew({ owner, missions: keysOf(claims) })).map((lease) => [keyOf(lease.userId, lease.missionId), lease]));
      return claims.filter((claim) => {
        const lease = held.get(keyOf(claim.mission.userId, claim.mission.id));
        if (!lease) return false;
        // Only the lease changed since the version the store holds: the claimed snapshot stays valid
        // at the new version. Any other version means the row changed otherwise (a user's edit, a
        // write): the version is kept, so the fast write is refused and the write-back reads.
        const claimed = claimedSnapshots.get(claim);
        if (claimed?.version === lease.versionBefore) claimedSnapshots.set(claim, { ...claimed, version: lease.version });
        return true;
      });
    },
    nextDueInMs: () => projection.nextDueInMs(),
    watch: (onSignal) => projection.watch(onSignal),
    hasPendingChanges: () => projection.hasPendingChanges(),
    databaseNow: () => projection.databaseNow(),
  };
}

import type { MissionOverview } from '@mana-ai/projection';
import type { FastifyInstance } from 'fastify';
import { RunnerError } from '../errors.js';

const ENCRYPTED_PREFIX = 'enc:1:';

/** One mission in the operator view: ids, schedule, lease and last run; never the user's text. */
export interface MissionView {
  id: string;
  state: string;
  agentId: string | null;
  cadence: unknown;
  /** The stored `nextRunAt` text, as the user's devices wrote it. */
  nextRunAt: string | null;
  /** `nextRunAt` as the due check reads it (UTC), or null when missing or unparseable. */
  dueAt: string | null;
  deleted: boolean;
  /** True while the title or objective is still ciphertext (such missions are skipped). */
  encrypted: boolean;
  inputCount: number;
  hasGrant: boolean;
  lease: { owner: string; until: string } | null;
  iterationCount: number;
  lastIteration: { id: string; source: string | null; overallStatus: string | null; startedAt: string | null; steps: number } | null;
}

/** Maps a projected mission to its operator view (no title, objective, summaries or step params). */
export function toMissionView(overview: MissionOverview): MissionView {
  const { mission, lastIteration } = overview;
  return {
    id: mission.id,
    state: overview.state,
    agentId: mission.agentId ?? null,
    cadence: mission.cadence ?? null,
    nextRunAt: overview.nextRunAt,
    dueAt: overview.dueAt,
    deleted: overview.deleted,
    encrypted: mission.title.startsWith(ENCRYPTED_PREFIX) || mission.objective.startsWith(ENCRYPTED_PREFIX),
    inputCount: mission.inputs.length,
    hasGrant: mission.grant !== undefined && mission.grant !== null,
    lease: overview.lease,
    iterationCount: mission.iterations.length,
    lastIteration: lastIteration
      ? {
          id: lastIteration.id,
          source: lastIteration.source ?? null,
          overallStatus: lastIteration.overallStatus ?? null,
          startedAt: lastIteration.startedAt ?? null,
          steps: Array.isArray(lastIteration.plan) ? lastIteration.plan.length : 0,
        }
      : null,
  };
}

/**
 * `GET /internal/missions/:userId` (service key): the user's projected missions as the runner sees
 * them — state, schedule, lease, last run — for operators debugging "why was this not planned".
 */
export default async function internalMissionsRoute(app: FastifyInstance): Promise<void> {
  app.get<{ Params: { userId: string } }>(
    '/internal/missions/:userId',
    {
      schema: {
        params: {
          type: 'object',
          properties: { userId: { type: 'string', minLength: 1, maxLength: 200 } },
          required: ['userId'],
        },
      },
    },
    async (request) => {
      // PostgreSQL text cannot hold NUL; such an id is a malformed request, not an unknown user.
      if (request.params.userId.includes('\u0000')) throw new RunnerError('RUNNER_BAD_REQUEST', 'user id must not contain NUL');
      const missions = await app.manaProjection.listUserMissions(request.params.userId);
      return { userId: request.params.userId, missions: missions.map(toMissionView) };
    },
  );
}

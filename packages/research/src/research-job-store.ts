import type { SqlClient, SqlTransaction } from '@mana-ai/core';
import type { DeepResearchAnswer } from './deep-research.js';
import { isRecord } from './http.js';
import { type ActiveResearchState, IDLE_RESEARCH_STATE, type ResearchState } from './research-machine.js';

/** Collaborators of the job store. */
export interface ResearchJobStoreDeps {
  /** The runner's postgres.js client; every statement runs in a transaction scoped to the job's user (row-level security). */
  sql: SqlClient;
}

/** Which missions have a job row, as keys only (no task id, state or answer). */
export interface ResearchJobKeys {
  /** At most `maxKeys` missions with a job row. */
  keys: { userId: string; missionId: string }[];
  /** True when more missions than `maxKeys` have a job row: `keys` is then incomplete. */
  more: boolean;
}

/** Persists each mission's {@link ResearchState} in `mana_ai.mission_research_jobs`. */
export interface ResearchJobStore {
  /** The mission's state; `idle` when it has no job row. */
  load(userId: string, missionId: string): Promise<ResearchState>;
  /** The keys of at most `maxKeys` missions of any user that have a job row, in one statement. */
  jobKeys(maxKeys: number): Promise<ResearchJobKeys>;
  /** Inserts or replaces the mission's job row with `state`. */
  save(userId: string, missionId: string, state: ActiveResearchState): Promise<void>;
  /**
   * Deletes the mission's job row; with `taskId`, only when the row still holds that task (a
   * newer job is left alone). Returns whether a row was deleted.
   */
  delete(userId: string, missionId: string, taskId?: string): Promise<boolean>;
}

interface JobRow {
  task_id: string;
  provider_id: string;
  submitted_at: Date;
  last_polled_at: Date | null;
  state: string;
  remote_status: string;
  failed_polls: number;
  result: unknown;
  completed_at: Date | null;
}

/**
 * Runs `fn` in a transaction whose `app.current_user_id` is `userId`: the table's row-level security
 * (migration research/0003) then shows and accepts that user's rows only.
 */
function asUser<T>(sql: SqlClient, userId: string, fn: (tx: SqlTransaction) => Promise<T>): Promise<T> {
  return sql.begin(async (tx) => {
    await tx`SELECT set_config('app.current_user_id', ${userId}, true)`;
    return fn(tx);
  }) as Promise<T>;
}

/** Creates a {@link ResearchJobStore} over `mana_ai.mission_research_jobs`. */
export function createResearchJobStore(deps: ResearchJobStoreDeps): ResearchJobStore {
  const { sql } = deps;
  return {
    async load(userId, missionId) {
      // One statement (migration research/0004): the function sets the user for its own transaction.
      const rows = await sql<JobRow[]>`
        SELECT task_id, provider_id, submitted_at, last_polled_at, state, remote_status, failed_polls, result, completed_at
        FROM mana_ai.research_job_of(${userId}, ${missionId})`;
      const row = rows[0];
      return row ? fromRow(row) : IDLE_RESEARCH_STATE;
    },

    async jobKeys(maxKeys) {
      // Cross-user, keys only (migration research/0005, SECURITY DEFINER as mana_ai_feed).
      const [row] = await sql<{ user_ids: string[]; mission_ids: string[]; more: boolean }[]>`
        SELECT user_ids, mission_ids, more FROM mana_ai.research_job_keys(${maxKeys})`;
      const missionIds = row?.mission_ids ?? [];
      const keys = (row?.user_ids ?? []).map((userId, index) => ({ userId, missionId: missionIds[index] ?? '' }));
      return { keys, more: row?.more ?? false };
    },

    async save(userId, missionId, state) {
      const completed = state.phase === 'completed';
      // Sent as text and cast: a string bound to a jsonb parameter would be stored as a JSON string scalar.
      const result = completed ? JSON.stringify(state.answer) : null;
      await asUser(sql, userId, (tx) => tx`
        INSERT INTO mana_ai.mission_research_jobs (
          user_id, mission_id, task_id, provider_id, submitted_at, last_polled_at,
          state, remote_status, failed_polls, result, completed_at, updated_at
        ) VALUES (
          ${userId}, ${missionId}, ${state.taskId}, ${state.providerId}, ${new Date(state.submittedAt)},
          ${state.lastPolledAt === null ? null : new Date(state.lastPolledAt)},
          ${state.phase}, ${completed ? 'completed' : state.remoteStatus}, ${completed ? 0 : state.failedPolls},
          ${result}::text::jsonb, ${completed ? new Date(state.completedAt) : null}, now()
        )
        ON CONFLICT (user_id, mission_id) DO UPDATE SET
          task_id = EXCLUDED.task_id,
          provider_id = EXCLUDED.provider_id,
          submitted_at = EXCLUDED.submitted_at,
          last_polled_at = EXCLUDED.last_polled_at,
          state = EXCLUDED.state,
          remote_status = EXCLUDED.remote_status,
          failed_polls = EXCLUDED.failed_polls,
          result = EXCLUDED.result,
          completed_at = EXCLUDED.completed_at,
          updated_at = now()`);
    },

    async delete(userId, missionId, taskId) {
      const result = await asUser(sql, userId, (tx) =>
        taskId === undefined
          ? tx`DELETE FROM mana_ai.mission_research_jobs WHERE user_id = ${userId} AND mission_id = ${missionId}`
          : tx`
              DELETE FROM mana_ai.mission_research_jobs
              WHERE user_id = ${userId} AND mission_id = ${missionId} AND task_id = ${taskId}`,
      );
      return result.count > 0;
    },
  };
}

function fromRow(row: JobRow): ActiveResearchState {
  const job = {
    taskId: row.task_id,
    providerId: row.provider_id,
    submittedAt: row.submitted_at.getTime(),
    lastPolledAt: row.last_polled_at === null ? null : row.last_polled_at.getTime(),
  };
  const answer = row.state === 'completed' ? toAnswer(row.result) : undefined;
  if (answer) {
    return {
      ...job,
      phase: 'completed',
      completedAt: (row.completed_at ?? row.last_polled_at ?? row.submitted_at).getTime(),
      answer,
    };
  }
  // A row of the original service (no state columns yet) or a completed row without a usable
  // answer is polled again, which either finds the answer or gives the job up.
  return {
    ...job,
    phase: 'running',
    remoteStatus: row.remote_status === 'running' ? 'running' : 'queued',
    failedPolls: row.failed_polls,
  };
}

function toAnswer(value: unknown): DeepResearchAnswer | undefined {
  if (!isRecord(value) || typeof value.answer !== 'string' || !Array.isArray(value.citations)) return undefined;
  return value as unknown as DeepResearchAnswer;
}

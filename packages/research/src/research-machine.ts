import type { Clock } from '@mana-ai/core';
import type { DeepResearchAnswer, DeepResearchPoll, DeepResearchSubmission } from './deep-research.js';
import { ResearchError, type ResearchErrorCode, type ResearchErrorKind } from './errors.js';

/** The fields every persisted deep-research job has. */
export interface ResearchJobFields {
  taskId: string;
  providerId: string;
  /** Epoch ms of the submit. */
  submittedAt: number;
  /** Epoch ms of the last poll attempt, null before the first. */
  lastPolledAt: number | null;
}

/** A job submitted and not finished yet (`queued`/`running` remotely, or not answering). */
export interface RunningResearchState extends ResearchJobFields {
  phase: 'running';
  /** What the last successful poll (or the submit) said. */
  remoteStatus: 'queued' | 'running';
  /** Consecutive polls answered with a non-2xx status or a malformed body. */
  failedPolls: number;
}

/** A job whose answer arrived and is kept until a plan using it is written. */
export interface CompletedResearchState extends ResearchJobFields {
  phase: 'completed';
  /** Epoch ms of the poll that returned the answer. */
  completedAt: number;
  answer: DeepResearchAnswer;
}

/** A state with a job row behind it. */
export type ActiveResearchState = RunningResearchState | CompletedResearchState;

/** The deep-research state of one mission, carried across ticks. `idle` = no job row. */
export type ResearchState = { phase: 'idle' } | ActiveResearchState;

/** The state of a mission without a job. */
export const IDLE_RESEARCH_STATE: ResearchState = Object.freeze({ phase: 'idle' });

/** A client failure as plain data (the machine stays pure and serialisable). */
export interface ResearchFailure {
  code: ResearchErrorCode;
  kind: ResearchErrorKind;
  status?: number;
}

/** What happened: the tick started the stage, a client answered, or a plan was written. */
export type ResearchEvent =
  | { type: 'tick'; deepRequested: boolean }
  | { type: 'submitted'; submission: DeepResearchSubmission }
  | { type: 'submit-failed'; failure: ResearchFailure }
  | { type: 'polled'; poll: DeepResearchPoll }
  | { type: 'poll-failed'; failure: ResearchFailure }
  | { type: 'plan-written' };

/** Why a job was given up. */
export type ResearchGiveUpReason = 'failed' | 'cancelled' | 'expired' | 'not-found' | 'poll-errors';

/** Why the stage falls back to shallow research. */
export type ShallowFallbackReason = 'deep-not-requested' | 'submit-failed' | 'deep-failed' | 'deep-empty';

/** A fact for the runner's metrics and logs (the orchestrator adds user and mission ids). */
export type ResearchNotice =
  | { kind: 'submitted'; taskId: string; providerId: string }
  | { kind: 'submit-failed'; failure: ResearchFailure }
  | {
      kind: 'pending-skip';
      taskId: string;
      providerId: string;
      remoteStatus: 'queued' | 'running';
      failedPolls: number;
      failure?: ResearchFailure;
    }
  | { kind: 'completed'; taskId: string; providerId: string; hasAnswer: boolean }
  | { kind: 'failed'; taskId: string; providerId: string; reason: ResearchGiveUpReason; failure?: ResearchFailure }
  | { kind: 'consumed'; taskId: string; providerId: string };

/**
 * What the orchestrator must do. `save`/`delete`/`notify` are bookkeeping; exactly one of
 * `submit`, `poll`, `skip`, `inject`, `shallow` ends each transition that needs an action.
 */
export type ResearchEffect =
  | { type: 'save'; state: ActiveResearchState }
  | { type: 'delete'; taskId: string }
  | { type: 'notify'; notice: ResearchNotice }
  | { type: 'submit' }
  | { type: 'poll'; taskId: string }
  | { type: 'skip' }
  | { type: 'inject'; answer: DeepResearchAnswer }
  | { type: 'shallow'; reason: ShallowFallbackReason };

/** The result of one transition. */
export interface ResearchTransition {
  state: ResearchState;
  effects: ResearchEffect[];
}

/** Collaborators of the machine: only the clock. */
export interface ResearchMachineDeps {
  clock: Clock;
}

/** Options of the machine. */
export interface ResearchMachineOptions {
  /** A job not completed this long after its submit is given up (default 2 h). */
  maxJobAgeMs?: number;
  /** Consecutive non-2xx or malformed polls after which a job is given up (default 3). */
  maxFailedPolls?: number;
}

/** Default machine options. */
export const RESEARCH_MACHINE_DEFAULTS = { maxJobAgeMs: 2 * 60 * 60 * 1000, maxFailedPolls: 3 } as const;

/** The pure cross-tick deep-research state machine. */
export interface ResearchMachine {
  /** Computes the next state and the effects to run; performs no I/O and never mutates `state`. */
  transition(state: ResearchState, event: ResearchEvent): ResearchTransition;
}

// Statuses that mean the task is gone for good, not a passing failure.
const GONE_STATUSES = new Set([404, 410]);

/** Creates a {@link ResearchMachine}. Invalid options throw `RESEARCH_INVALID_OPTIONS`. */
export function createResearchMachine(deps: ResearchMachineDeps, options: ResearchMachineOptions = {}): ResearchMachine {
  const maxJobAgeMs = options.maxJobAgeMs ?? RESEARCH_MACHINE_DEFAULTS.maxJobAgeMs;
  const maxFailedPolls = options.maxFailedPolls ?? RESEARCH_MACHINE_DEFAULTS.maxFailedPolls;
  if (!Number.isFinite(maxJobAgeMs) || maxJobAgeMs <= 0) {
    throw new ResearchError('RESEARCH_INVALID_OPTIONS', 'maxJobAgeMs must be a positive number', { operation: 'config' });
  }
  if (!Number.isInteger(maxFailedPolls) || maxFailedPolls < 1) {
    throw new ResearchError('RESEARCH_INVALID_OPTIONS', 'maxFailedPolls must be an integer of at least 1', {
      operation: 'config',
    });
  }
  const unchanged = (state: ResearchState): ResearchTransition => ({ state, effects: [] });
  const giveUp = (job: ActiveResearchState, reason: ResearchGiveUpReason, failure?: ResearchFailure): ResearchTransition => ({
    state: IDLE_RESEARCH_STATE,
    effects: [
      { type: 'delete', taskId: job.taskId },
      {
        type: 'notify',
        notice: { kind: 'failed', taskId: job.taskId, providerId: job.providerId, reason, ...(failure ? { failure } : {}) },
      },
      { type: 'shallow', reason: 'deep-failed' },
    ],
  });
  const stillPending = (next: RunningResearchState, failure?: ResearchFailure): ResearchTransition => ({
    state: next,
    effects: [
      { type: 'save', state: next },
      {
        type: 'notify',
        notice: {
          kind: 'pending-skip',
          taskId: next.taskId,
          providerId: next.providerId,
          remoteStatus: next.remoteStatus,
          failedPolls: next.failedPolls,
          ...(failure ? { failure } : {}),
        },
      },
      { type: 'skip' },
    ],
  });

  return {
    transition(state, event) {
      const now = deps.clock.now();
      switch (event.type) {
        case 'tick':
          if (state.phase === 'idle') {
            return {
              state,
              effects: [event.deepRequested ? { type: 'submit' } : { type: 'shallow', reason: 'deep-not-requested' }],
            };
          }
          if (state.phase === 'running') return { state, effects: [{ type: 'poll', taskId: state.taskId }] };
          return { state, effects: [{ type: 'inject', answer: state.answer }] };

        case 'submitted': {
          if (state.phase !== 'idle') return unchanged(state);
          const { taskId, providerId, status } = event.submission;
          const next: RunningResearchState = {
            phase: 'running',
            taskId,
            providerId,
            submittedAt: now,
            lastPolledAt: null,
            remoteStatus: status,
            failedPolls: 0,
          };
          const pending = stillPending(next);
          return {
            state: next,
            effects: [
              pending.effects[0]!,
              { type: 'notify', notice: { kind: 'submitted', taskId, providerId } },
              ...pending.effects.slice(1),
            ],
          };
        }

        case 'submit-failed':
          if (state.phase !== 'idle') return unchanged(state);
          return {
            state,
            effects: [
              { type: 'notify', notice: { kind: 'submit-failed', failure: event.failure } },
              { type: 'shallow', reason: 'submit-failed' },
            ],
          };

        case 'polled': {
          if (state.phase !== 'running' || event.poll.taskId !== state.taskId) return unchanged(state);
          const { poll } = event;
          if (poll.status === 'failed' || poll.status === 'cancelled') return giveUp(state, poll.status);
          if (poll.status === 'completed') {
            if (!poll.answer) {
              return {
                state: IDLE_RESEARCH_STATE,
                effects: [
                  { type: 'delete', taskId: state.taskId },
                  {
                    type: 'notify',
                    notice: { kind: 'completed', taskId: state.taskId, providerId: state.providerId, hasAnswer: false },
                  },
                  { type: 'shallow', reason: 'deep-empty' },
                ],
              };
            }
            const next: CompletedResearchState = {
              phase: 'completed',
              taskId: state.taskId,
              providerId: state.providerId,
              submittedAt: state.submittedAt,
              lastPolledAt: now,
              completedAt: now,
              answer: poll.answer,
            };
            return {
              state: next,
              effects: [
                { type: 'save', state: next },
                {
                  type: 'notify',
                  notice: { kind: 'completed', taskId: next.taskId, providerId: next.providerId, hasAnswer: true },
                },
                { type: 'inject', answer: next.answer },
              ],
            };
          }
          if (now - state.submittedAt >= maxJobAgeMs) return giveUp(state, 'expired');
          return stillPending({ ...state, remoteStatus: poll.status, lastPolledAt: now, failedPolls: 0 });
        }

        case 'poll-failed': {
          if (state.phase !== 'running') return unchanged(state);
          const { failure } = event;
          if (failure.status !== undefined && GONE_STATUSES.has(failure.status)) return giveUp(state, 'not-found', failure);
          // Only answers that say "this will not work" count; timeouts and network errors are
          // bounded by the job's age instead.
          const counts = failure.kind === 'http-status' || failure.kind === 'malformed';
          const failedPolls = counts ? state.failedPolls + 1 : state.failedPolls;
          if (failedPolls >= maxFailedPolls) return giveUp(state, 'poll-errors', failure);
          if (now - state.submittedAt >= maxJobAgeMs) return giveUp(state, 'expired', failure);
          return stillPending({ ...state, lastPolledAt: now, failedPolls }, failure);
        }

        case 'plan-written':
          if (state.phase !== 'completed') return unchanged(state);
          return {
            state: IDLE_RESEARCH_STATE,
            effects: [
              { type: 'delete', taskId: state.taskId },
              { type: 'notify', notice: { kind: 'consumed', taskId: state.taskId, providerId: state.providerId } },
            ],
          };
      }
    },
  };
}

/** The plain-data view of a research error, for {@link ResearchEvent}s. */
export function toResearchFailure(error: ResearchError): ResearchFailure {
  return { code: error.code, kind: error.kind, ...(error.status === undefined ? {} : { status: error.status }) };
}

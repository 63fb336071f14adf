import {
  type Clock,
  type EventChannel,
  type Logger,
  type Mission,
  type ResearchOutcome,
  type ResearchPort,
  type ResolvedInput,
  describeError,
  noopLogger,
  systemClock,
} from '@mana-ai/core';
import { type DeepResearchClient, toDeepResearchInput } from './deep-research.js';
import { ResearchError, type ResearchErrorCode, type ResearchErrorKind, isResearchError } from './errors.js';
import type { ResearchJobStore } from './research-job-store.js';
import {
  IDLE_RESEARCH_STATE,
  type ResearchEvent,
  type ResearchGiveUpReason,
  type ResearchMachineOptions,
  type ResearchNotice,
  type ResearchState,
  type ShallowFallbackReason,
  createResearchMachine,
  toResearchFailure,
} from './research-machine.js';
import { type ShallowResearchClient, toShallowResearchInput } from './shallow-research.js';
import { DEEP_RESEARCH_TRIGGER, RESEARCH_TRIGGER, type ResearchMission, isPlaintext, matchesTrigger } from './trigger.js';

/** Ids every research event carries. */
export interface ResearchEventBase {
  userId: string;
  missionId: string;
}

/**
 * Typed events of the research stage. The runner maps them to the docs/wire-contract.md#metrics metrics:
 * `research.submitted` → `mana_ai_research_jobs_submitted_total{provider}`, `research.completed` →
 * `…_completed_total{provider}`, `research.failed` → `…_failed_total{provider}`,
 * `research.pending-skip` → `mana_ai_research_jobs_pending_skips_total`.
 */
export type ResearchEvents = {
  'research.submitted': ResearchEventBase & { provider: string; taskId: string };
  'research.submit-failed': ResearchEventBase & {
    provider: string;
    code: ResearchErrorCode;
    kind: ResearchErrorKind;
    status?: number;
  };
  'research.pending-skip': ResearchEventBase & {
    provider: string;
    taskId: string;
    remoteStatus: 'queued' | 'running';
    failedPolls: number;
    code?: ResearchErrorCode;
  };
  'research.completed': ResearchEventBase & { provider: string; taskId: string; hasAnswer: boolean };
  'research.failed': ResearchEventBase & {
    provider: string;
    taskId: string;
    reason: ResearchGiveUpReason;
    code?: ResearchErrorCode;
  };
  'research.consumed': ResearchEventBase & { provider: string; taskId: string };
  'research.shallow': ResearchEventBase & {
    reason: ShallowFallbackReason;
    status: 'found' | 'empty' | 'error';
    feedCount: number;
    articleCount: number;
    code?: ResearchErrorCode;
  };
};

/** Collaborators of the research stage. */
export interface ResearchStageDeps {
  /** Where deep-research jobs live between ticks. */
  store: ResearchJobStore;
  /** The deep research client; without it deep research is off and the store is never read. */
  deep?: DeepResearchClient;
  /** The shallow research client; without it there is no shallow research. */
  shallow?: ShallowResearchClient;
  clock?: Clock;
  logger?: Logger;
  events?: EventChannel<ResearchEvents>;
}

/** Options of the research stage. */
export interface ResearchStageOptions extends ResearchMachineOptions {
  /** Submit new deep-research jobs (`MANA_AI_DEEP_RESEARCH_ENABLED`); default false. Running jobs are always finished. */
  deepResearchEnabled?: boolean;
  /** Shallow research trigger; default {@link RESEARCH_TRIGGER}. */
  researchTrigger?: RegExp;
  /** Deep research trigger, overridden by the mission's `deepResearch` flag; default {@link DEEP_RESEARCH_TRIGGER}. */
  deepResearchTrigger?: RegExp;
}

/** What the research stage decided for this tick. */
export type ResearchStageOutcome =
  /** A deep-research job is in flight: skip the mission this tick, before resolving inputs. */
  | { status: 'pending'; taskId: string }
  /** Plan now, with `input` added to the resolved inputs when not null. */
  | { status: 'ready'; input: ResolvedInput | null; source: 'deep' | 'shallow' | 'none' };

/**
 * One mission's research stage per tick, plus the write-back acknowledgement. It is also core's
 * `ResearchPort` (`prepare`/`consumed`), so it plugs into core's dispatcher as `ports.research`.
 */
export interface ResearchStage extends ResearchPort {
  /** True when this mission asks for deep research now (option, flag or trigger; plaintext objective). */
  wantsDeepResearch(mission: ResearchMission): boolean;
  /** Runs the stage: polls or submits deep research, falls back to shallow research. */
  run(mission: ResearchMission): Promise<ResearchStageOutcome>;
  /**
   * Call after the tick's write-back: with `planWritten` true the kept deep-research answer is
   * consumed (its job row deleted); with false it is kept for the next tick.
   */
  acknowledge(mission: Pick<ResearchMission, 'id' | 'userId'>, planWritten: boolean): Promise<void>;
  /** `acknowledge(mission, true)`. */
  markConsumed(mission: Pick<ResearchMission, 'id' | 'userId'>): Promise<void>;
  /** `ResearchPort.prepare`: {@link ResearchStage.run} on a core mission, mapped to a `ResearchOutcome`. */
  prepare(request: { mission: Mission; iterationId: string }): Promise<ResearchOutcome>;
  /** `ResearchPort.consumed`: {@link ResearchStage.markConsumed}; the mission run calls it after the write-back. */
  consumed(request: { mission: Mission; iterationId: string }): Promise<void>;
}

/**
 * The research view of a core mission. Core's `Mission` has no `deepResearch` field; a record that
 * carries a boolean one (the projection keeps every synced field) has it honoured.
 */
export function toResearchMission(mission: Mission): ResearchMission {
  const flag = (mission as Mission & { deepResearch?: unknown }).deepResearch;
  return {
    id: mission.id,
    userId: mission.userId,
    objective: mission.objective,
    conceptMarkdown: mission.conceptMarkdown,
    ...(typeof flag === 'boolean' ? { deepResearch: flag } : {}),
  };
}

// submit/poll lead to one more transition each; four steps are more than any path needs.
const MAX_STEPS = 4;
/**
 * How long the set of missions with a job is reused while deep research is disabled: a mission
 * outside it is taken to have no job without a statement, so a job another instance (with deep
 * research enabled) submits is found within this.
 */
const JOB_KEYS_LIFETIME_MS = 5_000;
/** At most this many keys are loaded into that set; with more jobs each mission is looked up on its own. */
const MAX_JOB_KEYS = 10_000;

/** Creates a {@link ResearchStage}. Invalid options throw `RESEARCH_INVALID_OPTIONS`. */
export function createResearchStage(deps: ResearchStageDeps, options: ResearchStageOptions = {}): ResearchStage {
  const { store, deep, shallow } = deps;
  const logger = deps.logger ?? noopLogger;
  const clock = deps.clock ?? systemClock;
  const machine = createResearchMachine({ clock }, options);
  const deepEnabled = options.deepResearchEnabled ?? false;
  if (deepEnabled && !deep) {
    throw new ResearchError('RESEARCH_INVALID_OPTIONS', 'deepResearchEnabled needs a deep research client', {
      operation: 'config',
    });
  }
  // With deep research disabled no job is ever submitted here, so a mission gets one only from another
  // instance: the keys of the missions with a job are loaded once per JOB_KEYS_LIFETIME_MS (when a run
  // asks, shared by concurrent runs) and only those missions' jobs are read. Undefined keys: the set
  // was incomplete (more than MAX_JOB_KEYS jobs), so every mission is read.
  let jobKeys: { loadedAt: number; keys: ReadonlySet<string> | undefined } | undefined;
  let jobKeysLoading: Promise<ReadonlySet<string> | undefined> | undefined;
  const researchTrigger = options.researchTrigger ?? RESEARCH_TRIGGER;
  const deepTrigger = options.deepResearchTrigger ?? DEEP_RESEARCH_TRIGGER;

  const wantsDeepResearch = (mission: ResearchMission): boolean =>
    deepEnabled &&
    isPlaintext(mission.objective) &&
    (typeof mission.deepResearch === 'boolean' ? mission.deepResearch : matchesTrigger(deepTrigger, mission));

  function notify(mission: ResearchMission | Pick<ResearchMission, 'id' | 'userId'>, notice: ResearchNotice): void {
    const base = { userId: mission.userId, missionId: mission.id };
    const context = { missionId: mission.id };
    switch (notice.kind) {
      case 'submitted':
        logger.info({ ...context, taskId: notice.taskId, provider: notice.providerId }, 'deep research submitted');
        deps.events?.emit('research.submitted', { ...base, provider: notice.providerId, taskId: notice.taskId });
        return;
      case 'submit-failed':
        logger.warn({ ...context, code: notice.failure.code, status: notice.failure.status }, 'deep research submit failed');
        deps.events?.emit('research.submit-failed', {
          ...base,
          provider: deep?.provider ?? '',
          code: notice.failure.code,
          kind: notice.failure.kind,
          ...(notice.failure.status === undefined ? {} : { status: notice.failure.status }),
        });
        return;
      case 'pending-skip':
        logger.debug({ ...context, taskId: notice.taskId, remoteStatus: notice.remoteStatus }, 'deep research pending');
        deps.events?.emit('research.pending-skip', {
          ...base,
          provider: notice.providerId,
          taskId: notice.taskId,
          remoteStatus: notice.remoteStatus,
          failedPolls: notice.failedPolls,
          ...(notice.failure ? { code: notice.failure.code } : {}),
        });
        return;
      case 'completed':
        if (notice.hasAnswer) logger.info({ ...context, taskId: notice.taskId }, 'deep research done');
        else logger.warn({ ...context, taskId: notice.taskId }, 'deep research completed without body');
        deps.events?.emit('research.completed', {
          ...base,
          provider: notice.providerId,
          taskId: notice.taskId,
          hasAnswer: notice.hasAnswer,
        });
        return;
      case 'failed':
        logger.warn({ ...context, taskId: notice.taskId, reason: notice.reason }, 'deep research given up');
        deps.events?.emit('research.failed', {
          ...base,
          provider: notice.providerId,
          taskId: notice.taskId,
          reason: notice.reason,
          ...(notice.failure ? { code: notice.failure.code } : {}),
        });
        return;
      case 'consumed':
        deps.events?.emit('research.consumed', { ...base, provider: notice.providerId, taskId: notice.taskId });
        return;
    }
  }

  async function runShallow(mission: ResearchMission, reason: ShallowFallbackReason): Promise<ResearchStageOutcome> {
    const none: ResearchStageOutcome = { status: 'ready', input: null, source: 'none' };
    if (!shallow || !isPlaintext(mission.objective) || !matchesTrigger(researchTrigger, mission)) return none;
    const outcome = await shallow.research(mission.objective, { userId: mission.userId });
    const base = { userId: mission.userId, missionId: mission.id, reason };
    if (outcome.status === 'found') {
      logger.info(
        { missionId: mission.id, feedCount: outcome.feedCount, articleCount: outcome.articles.length },
        'pre-research done',
      );
      deps.events?.emit('research.shallow', {
        ...base,
        status: 'found',
        feedCount: outcome.feedCount,
        articleCount: outcome.articles.length,
      });
      return { status: 'ready', input: toShallowResearchInput(mission.objective, outcome), source: 'shallow' };
    }
    deps.events?.emit('research.shallow', {
      ...base,
      status: outcome.status,
      feedCount: 0,
      articleCount: 0,
      ...(outcome.status === 'error' ? { code: outcome.error.code } : {}),
    });
    return none;
  }

  async function call(attempt: () => Promise<ResearchEvent>, failed: (error: ResearchError) => ResearchEvent) {
    try {
      return await attempt();
    } catch (error) {
      if (!isResearchError(error)) throw error;
      return failed(error);
    }
  }

  const keyOf = (userId: string, missionId: string): string => JSON.stringify([userId, missionId]);

  /** The keys of the missions with a job (deep research disabled); undefined when the set is incomplete. */
  function currentJobKeys(): Promise<ReadonlySet<string> | undefined> {
    if (jobKeys && clock.now() - jobKeys.loadedAt < JOB_KEYS_LIFETIME_MS) return Promise.resolve(jobKeys.keys);
    jobKeysLoading ??= (async () => {
      const loadedAt = clock.now();
      try {
        const { keys, more } = await store.jobKeys(MAX_JOB_KEYS);
        const set = more ? undefined : new Set(keys.map((key) => keyOf(key.userId, key.missionId)));
        jobKeys = { loadedAt, keys: set };
        return set;
      } finally {
        jobKeysLoading = undefined;
      }
    })();
    return jobKeysLoading;
  }

  /** The mission's job state: with deep research disabled, read only when the mission may have a job. */
  async function load(mission: Pick<ResearchMission, 'id' | 'userId'>): Promise<ResearchState> {
    if (!deepEnabled) {
      const keys = await currentJobKeys().catch((error: unknown) => {
        // Not remembered: the next run loads the set again. This one reads the mission's job.
        logger.warn({ missionId: mission.id, err: describeError(error) }, 'research job keys not loaded');
        return undefined;
      });
      if (keys && !keys.has(keyOf(mission.userId, mission.id))) return IDLE_RESEARCH_STATE;
    }
    return store.load(mission.userId, mission.id);
  }

  async function run(mission: ResearchMission): Promise<ResearchStageOutcome> {
    if (!deep) return runShallow(mission, 'deep-not-requested');
    let state = await load(mission);
    let event: ResearchEvent = { type: 'tick', deepRequested: wantsDeepResearch(mission) };
    for (let step = 0; step < MAX_STEPS; step++) {
      const transition = machine.transition(state, event);
      state = transition.state;
      let next: ResearchEvent | undefined;
      for (const effect of transition.effects) {
        switch (effect.type) {
          case 'save':
            await store.save(mission.userId, mission.id, effect.state);
            break;
          case 'delete':
            await store.delete(mission.userId, mission.id, effect.taskId);
            break;
          case 'notify':
            notify(mission, effect.notice);
            break;
          case 'submit':
            next = await call(
              async () => ({ type: 'submitted', submission: await deep.submit(mission.userId, mission.objective) }),
              (error) => ({ type: 'submit-failed', failure: toResearchFailure(error) }),
            );
            break;
          case 'poll':
            next = await call(
              async () => ({ type: 'polled', poll: await deep.poll(mission.userId, effect.taskId) }),
              (error) => ({ type: 'poll-failed', failure: toResearchFailure(error) }),
            );
            break;
          case 'skip':
            return { status: 'pending', taskId: state.phase === 'idle' ? '' : state.taskId };
          case 'inject': {
            const label = isPlaintext(mission.objective) ? mission.objective : (effect.answer.query ?? '');
            return { status: 'ready', input: toDeepResearchInput(label, effect.answer), source: 'deep' };
          }
          case 'shallow':
            return runShallow(mission, effect.reason);
        }
      }
      if (!next) break;
      event = next;
    }
    return { status: 'ready', input: null, source: 'none' };
  }

  async function acknowledge(mission: Pick<ResearchMission, 'id' | 'userId'>, planWritten: boolean): Promise<void> {
    if (!planWritten || !deep) return;
    const state = await load(mission);
    const { effects } = machine.transition(state, { type: 'plan-written' });
    for (const effect of effects) {
      if (effect.type === 'delete') await store.delete(mission.userId, mission.id, effect.taskId);
      else if (effect.type === 'notify') notify(mission, effect.notice);
    }
  }

  return {
    wantsDeepResearch,
    run,
    acknowledge,
    markConsumed: (mission) => acknowledge(mission, true),

    async prepare({ mission }) {
      const outcome = await run(toResearchMission(mission));
      if (outcome.status === 'pending') return { kind: 'pending' };
      return outcome.input ? { kind: 'ready', inputs: [outcome.input] } : { kind: 'none' };
    },

    consumed: ({ mission }) => acknowledge(mission, true),
  };
}

// The research stage's slice of the shared bus (see ManaAiEvents in @mana-ai/core).
declare module '@mana-ai/core' {
  interface ManaAiEvents extends ResearchEvents {}
}

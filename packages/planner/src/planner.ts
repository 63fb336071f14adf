import type { Agent, Clock, EventChannel, Logger, ResolvedInput } from '@mana-ai/core';
import { type ToolCatalog, createToolCatalog } from './catalog.js';
import type { PlannerLocale } from './catalog-types.js';
import type { CompactionOptions } from './compaction.js';
import { PlannerError, type ProviderErrorKind } from './errors.js';
import type { PlannerEventContext, PlannerEvents } from './events.js';
import type { PolicyMode } from './injection.js';
import { type AiPlanOutput, planFromLoop } from './iteration.js';
import type { LlmAdapter } from './llm.js';
import { type PlannerLoopResult, runPlannerLoop } from './loop.js';
import type { LlmTransport } from './llm-transport.js';
import { type OpenAiCompatibleAdapterOptions, createOpenAiCompatibleAdapter } from './openai-adapter.js';
import { type PromptMission, buildPlannerPrompts } from './prompt.js';
import { createReminderChannel } from './reminders.js';

/** Collaborators of {@link createPlanner}. */
export interface PlannerDeps {
  /** An LLM adapter; without one, an OpenAI-compatible adapter is built from `options.llm`. */
  adapter?: LlmAdapter;
  /** fetch for the built adapter. */
  fetch?: typeof fetch;
  /** Transport of the built adapter (instead of `fetch`). */
  transport?: LlmTransport;
  events?: EventChannel<PlannerEvents>;
  clock?: Clock;
  logger?: Logger;
}

/** Options of {@link createPlanner}. */
export interface PlannerOptions {
  /** Language of tool descriptions, prompts and reminders (default `de`). */
  locale?: PlannerLocale;
  /** External catalog JSON replacing the built-in one. */
  catalog?: unknown;
  /** Options of the OpenAI-compatible adapter (required unless `deps.adapter` is given). */
  llm?: OpenAiCompatibleAdapterOptions;
  /** Default `log-only`. */
  policyMode?: PolicyMode;
  /** Default 5. */
  maxRounds?: number;
  /** Tool calls answered per plan at most (default 50); excess calls are dropped and the plan ends (see `runPlannerLoop`). */
  maxToolCalls?: number;
  /** Largest arguments of one call in UTF-8 bytes of JSON (default 16384). */
  maxToolArgumentBytes?: number;
  /** Longest summary in characters (default 4000). */
  maxSummaryChars?: number;
  /** Planner model (default: the adapter's default model). */
  model?: string;
  /** Planner temperature (default: the adapter's default). */
  temperature?: number;
  /** Compaction settings; omitted = no compaction. */
  compaction?: CompactionOptions;
}

/** One mission to plan. */
export interface PlanMissionRequest {
  mission: PromptMission;
  agent?: Agent | undefined;
  resolvedInputs?: readonly ResolvedInput[];
  /** Tokens the agent used in the previous 24 h, for the budget reminders. */
  pretickUsage24h?: number;
  /** Correlation ids for events (default: none). */
  context?: PlannerEventContext;
  signal?: AbortSignal;
}

/** A planner run with its plan. */
export interface PlanMissionResult extends PlannerLoopResult {
  plan: AiPlanOutput;
}

/** The planner: catalog, adapter and one call that plans a mission. */
export interface Planner {
  readonly catalog: ToolCatalog;
  readonly adapter: LlmAdapter;
  /** Builds the prompts, offers the agent's allowed server tools, runs the loop and returns the plan. */
  planMission(request: PlanMissionRequest): Promise<PlanMissionResult>;
}

/** Creates a {@link Planner}. */
export function createPlanner(deps: PlannerDeps, options: PlannerOptions): Planner {
  const locale = options.locale ?? 'de';
  const catalog = createToolCatalog({ locale, ...(options.catalog === undefined ? {} : { source: options.catalog }) });
  let adapter = deps.adapter;
  if (!adapter) {
    if (!options.llm) throw new PlannerError('PLANNER_INVALID_OPTIONS', 'either deps.adapter or options.llm is required');
    adapter = createOpenAiCompatibleAdapter(
      {
        ...(deps.fetch ? { fetch: deps.fetch } : {}),
        ...(deps.transport ? { transport: deps.transport } : {}),
        ...(deps.events ? { events: deps.events } : {}),
      },
      options.llm,
    );
  }
  const llm = adapter;
  return {
    catalog,
    adapter: llm,
    async planMission(request) {
      const { systemPrompt, userPrompt } = buildPlannerPrompts({
        mission: request.mission,
        agent: request.agent,
        locale,
        ...(request.resolvedInputs ? { resolvedInputs: request.resolvedInputs } : {}),
      });
      const result = await runPlannerLoop(
        {
          adapter: llm,
          ...(deps.events ? { events: deps.events } : {}),
          ...(deps.clock ? { clock: deps.clock } : {}),
          ...(deps.logger ? { logger: deps.logger } : {}),
        },
        {
          systemPrompt,
          userPrompt,
          toolSet: catalog.toolSetForPolicy(request.agent?.policy),
          locale,
          reminders: createReminderChannel({ agent: request.agent, pretickUsage24h: request.pretickUsage24h ?? 0, locale }),
          ...(request.agent?.policy ? { policy: request.agent.policy } : {}),
          ...(options.model === undefined ? {} : { model: options.model }),
          ...(options.temperature === undefined ? {} : { temperature: options.temperature }),
          ...(options.maxRounds === undefined ? {} : { maxRounds: options.maxRounds }),
          ...(options.maxToolCalls === undefined ? {} : { maxToolCalls: options.maxToolCalls }),
          ...(options.maxToolArgumentBytes === undefined ? {} : { maxToolArgumentBytes: options.maxToolArgumentBytes }),
          ...(options.maxSummaryChars === undefined ? {} : { maxSummaryChars: options.maxSummaryChars }),
          ...(options.policyMode === undefined ? {} : { policyMode: options.policyMode }),
          ...(options.compaction === undefined ? {} : { compaction: options.compaction }),
          ...(request.context === undefined ? {} : { context: request.context }),
          ...(request.signal === undefined ? {} : { signal: request.signal }),
        },
      );
      return { ...result, plan: planFromLoop(result) };
    },
  };
}

/**
 * Why a planner run produced no plan to write, or `undefined` when its plan may be written:
 * `llm-error: <kind>` after a provider failure, `llm-truncated` when the answer was cut off
 * (`finish_reason: length`). A typed reason for core's failed {@link PlanMissionResult} outcome.
 */
export function planFailureReason(result: Pick<PlannerLoopResult, 'stopReason' | 'error'>): PlanFailureReason | undefined {
  if (result.stopReason === 'llm-error') return `llm-error: ${result.error?.kind ?? 'unknown'}`;
  if (result.stopReason === 'truncated') return 'llm-truncated';
  return undefined;
}

/** See {@link planFailureReason}. */
export type PlanFailureReason = `llm-error: ${ProviderErrorKind | 'unknown'}` | 'llm-truncated';

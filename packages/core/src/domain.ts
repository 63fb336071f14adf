/** ISO-8601 timestamp as produced by `Date.prototype.toISOString()` (`YYYY-MM-DDTHH:mm:ss.sssZ`). */
export type IsoTimestamp = string;

/** The lifecycle state of a mission. Only `active` missions are ever due. */
export type MissionState = 'active' | 'paused' | 'done' | 'archived';

/**
 * How often a mission runs (see `nextRunAfter`). `cron` is a five-field expression read in the
 * mission's `timezone`; the webapp declares it but computes no `nextRunAt` for it, the runner does.
 */
export type MissionCadence =
  | { kind: 'manual' }
  | { kind: 'interval'; everyMinutes: number }
  | { kind: 'daily'; atHour: number; atMinute: number }
  | { kind: 'weekly'; dayOfWeek: number; atHour: number }
  | { kind: 'cron'; expression: string };

/** A linked input of a mission: `module` selects the resolver, `table`/`id` the synced record. */
export interface MissionInputRef {
  module: string;
  table: string;
  id: string;
}

/** What a planned step proposes. */
export type PlanStepIntent =
  | { kind: 'toolCall'; toolName: string; params: Record<string, unknown> }
  | { kind: 'note'; body: string };

/** Status of a single plan step. */
export type PlanStepStatus = 'planned' | 'staged' | 'approved' | 'rejected' | 'skipped' | 'failed';

/** One step of an iteration's plan. The runner writes ids `<iterationId>-<index>`. */
export interface PlanStep {
  id: string;
  summary: string;
  intent: PlanStepIntent;
  proposalId?: string;
  status: PlanStepStatus;
}

/** Overall status of an iteration. */
export type IterationStatus = 'running' | 'awaiting-review' | 'approved' | 'rejected' | 'failed';

/** One planning round of a mission, stored inline in `Mission.iterations`. */
export interface MissionIteration {
  id: string;
  startedAt: IsoTimestamp;
  finishedAt?: IsoTimestamp;
  plan: PlanStep[];
  summary?: string;
  userFeedback?: string;
  overallStatus: IterationStatus;
  /** Missing means `browser`; the runner always writes `server`. */
  source?: 'browser' | 'server';
  [extra: string]: unknown;
}

/** Key-derivation parameters bound into a mission grant. */
export interface GrantDerivation {
  version: 'v1';
  missionId: string;
  tables: string[];
  /** `"<table>:<id>"` entries. */
  recordIds: string[];
}

/** A time-limited, scope-bound key grant stored in plaintext on the mission record. */
export interface MissionGrant {
  /** Base64 RSA-OAEP ciphertext of the 32-byte mission data key. */
  wrappedKey: string;
  derivation: GrantDerivation;
  issuedAt: IsoTimestamp;
  expiresAt: IsoTimestamp;
}

/** A mission as the runner sees it after projecting the log (docs/wire-contract.md#missions-and-agents `ServerMission`). */
export interface Mission {
  id: string;
  userId: string;
  title: string;
  objective: string;
  conceptMarkdown: string;
  state: MissionState | (string & {});
  nextRunAt?: IsoTimestamp;
  inputs: MissionInputRef[];
  cadence: MissionCadence | Record<string, unknown> | undefined;
  iterations: MissionIteration[];
  grant?: MissionGrant;
  agentId?: string;
  /** IANA time zone for `daily`/`weekly`/`cron` cadences, when the mission carries one. */
  timezone?: string;
}

/** A tool policy decision. */
export type PolicyDecision = 'auto' | 'propose' | 'deny';

/** An agent's tool policy: `tools[name]` → `defaultsByModule[module]` → `defaultForAi`. */
export interface AiPolicy {
  tools: Record<string, PolicyDecision>;
  defaultsByModule?: Record<string, PolicyDecision>;
  defaultForAi: PolicyDecision;
}

/** Lifecycle state of an agent. */
export type AgentState = 'active' | 'paused' | 'archived';

/** The id of the bootstrapped default agent. */
export const DEFAULT_AGENT_ID = 'legacy:ai-default';
/** The name of the bootstrapped default agent. */
export const DEFAULT_AGENT_NAME = 'Mana';

/** An agent as the runner sees it after projecting the log (docs/wire-contract.md#missions-and-agents `ServerAgent`). */
export interface Agent {
  id: string;
  userId: string;
  name: string;
  avatar?: string;
  role: string;
  /** May still be `enc:1:` ciphertext; never sent to the LLM in that form. */
  systemPrompt?: string;
  /** May still be `enc:1:` ciphertext; never sent to the LLM in that form. */
  memory?: string;
  policy?: AiPolicy;
  state: AgentState | (string & {});
  maxConcurrentMissions: number;
  /** Rolling 24 h token budget; undefined = unlimited, `0` = paused. */
  maxTokensPerDay?: number;
  deletedAt?: IsoTimestamp;
}

/** An input resolved for the prompt. */
export interface ResolvedInput {
  id: string;
  module: string;
  table: string;
  title?: string;
  content: string;
}

/** Token usage of one or more LLM calls. */
export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

/**
 * Every reason a claimed mission is skipped (metric label values of `mana_ai_missions_skipped_total`).
 * An agent's in-flight limit is no skip: the claim leaves such a mission unclaimed and due.
 */
export const SKIP_REASONS = ['agent-archived', 'agent-paused', 'agent-budget', 'ciphertext-mission', 'research-pending'] as const;

/** Why a claimed mission was skipped. */
export type SkipReason = (typeof SKIP_REASONS)[number];

/** What one tick did (docs/wire-contract.md#tickstats plus skip counts by reason). */
export interface TickStats {
  scannedAt: IsoTimestamp;
  dueMissionCount: number;
  plansProduced: number;
  plansWrittenBack: number;
  parseFailures: number;
  errors: string[];
  skipped: Partial<Record<SkipReason, number>>;
}

/**
 * Replays one synced record from the `sync_changes` log (docs/wire-contract.md#last-writer-wins-replay) under the user's RLS scope;
 * `null` when the record has no rows, was deleted or carries `deletedAt`. The port between
 * `@mana-ai/projection` (which implements it) and `@mana-ai/resolvers` (which reads inputs with it).
 */
export type ReplayRecord = (userId: string, appId: string, table: string, recordId: string) => Promise<Record<string, unknown> | null>;

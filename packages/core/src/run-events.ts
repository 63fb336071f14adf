import type { IsoTimestamp, SkipReason, TickStats } from './domain.js';
import type { RefreshSummary } from './ports.js';

/**
 * Every agent gate decision (metric label values of `mana_ai_agent_decisions_total`). The original's
 * `skipped-concurrency` is gone: the claim enforces `maxConcurrentMissions`, so no claimed run is held back.
 */
export const AGENT_DECISIONS = ['ran', 'skipped-archived', 'skipped-paused', 'skipped-budget'] as const;

/** An agent gate decision of a run. */
export type AgentDecision = (typeof AGENT_DECISIONS)[number];

/** The step of a mission run in which an error happened. */
export type MissionStage = 'gates' | 'research' | 'inputs' | 'plan' | 'write-back';

/** Why the dispatcher ran a cycle. */
export type WakeReason = 'start' | 'timer' | 'changes' | 'due' | 'probe' | 'slot' | 'pass' | 'retry';

/** The ids every event of one mission run carries: the run id ties them together. */
export interface RunIds {
  /** Unique per run of a mission on this instance: tracing and metrics key on it. */
  runId: string;
  missionId: string;
  userId: string;
  agentId: string | null;
}

/** How a mission run ended. */
export type RunOutcome =
  | { kind: 'written'; written: boolean }
  | { kind: 'skipped'; reason: SkipReason }
  | { kind: 'plan-failed'; reason: string }
  | { kind: 'error'; stage: MissionStage; message: string };

/**
 * Events of the dispatcher and its mission runs; payloads carry ids, counts and enums, never user
 * text. A pass is one refresh + claim + plan round asked for by `runPass()` (`POST /internal/tick`).
 */
export interface DispatcherEvents {
  'tick.started': { passId: string; scannedAt: IsoTimestamp };
  'tick.refreshed': RefreshSummary;
  'tick.finished': { passId: string; stats: TickStats; durationMs: number };
  'tick.failed': { stage: 'refresh' | 'claim'; message: string };
  /** One wake-up of the dispatcher: what woke it, whether it refreshed, what it claimed. */
  'dispatcher.cycle': { reasons: WakeReason[]; refreshed: boolean; claimed: number; inFlight: number; durationMs: number };
  'mission.claimed': RunIds & { passId: string | null };
  'mission.skipped': RunIds & { reason: SkipReason };
  'agent.decision': { agentId: string; decision: AgentDecision };
  'mission.planned': RunIds & { steps: number; rounds: number; tokens: number };
  'mission.plan-failed': RunIds & { reason: string; tokens: number };
  'mission.written': RunIds & { iterationId: string; written: boolean };
  'mission.error': RunIds & { stage: MissionStage; message: string };
  /** The end of every run, whatever its outcome, after its lease was handed back or held for a retry. */
  'mission.finished': RunIds & { outcome: RunOutcome['kind']; durationMs: number };
  'tokens.used': { agentId: string; userId: string; tokens: number };
  /**
   * A lease heartbeat. `lost` counts runs whose lease ran out first (they may be planned elsewhere
   * too); runs that finished while the beat ran are neither held nor lost.
   */
  'leases.renewed': { requested: number; held: number; lost: number };
  'leases.renew-failed': { requested: number; message: string };
}

/** Emits one dispatcher event (a no-op without a bus). */
export type EmitDispatcherEvent = <Name extends keyof DispatcherEvents>(name: Name, payload: DispatcherEvents[Name]) => void;

import type { AiActor } from './actor.js';
import type { Agent, IsoTimestamp, Mission, MissionIteration, ResolvedInput, TokenUsage } from './domain.js';
import type { PlannedCall } from './iteration.js';

/** A due mission claimed (leased) by this instance for one run. */
export interface MissionClaim {
  mission: Mission;
  /** The owning agent, or null for legacy missions and unknown/deleted agents. */
  agent: Agent | null;
  /** The `nextRunAt` this run is for. */
  dueSlot: IsoTimestamp;
  /** Derived from (mission id, due slot): a retried write of the same run is recognised. */
  iterationId: string;
}

/** What the snapshot refresh did. */
export interface RefreshSummary {
  rowsApplied: number;
  newSnapshots: number;
  updatedSnapshots: number;
  /** True when another instance held the refresh lock and this one skipped. */
  skipped?: boolean;
}

/** What a run writes back for one planned mission (one transaction, lease released). */
export interface WriteBackRequest {
  /** The iteration, built once by core and written as given. */
  iteration: MissionIteration;
  /** Who wrote it, built once by core and written as given. */
  actor: AiActor;
  /** Tokens to add to the agent's rolling budget in the same transaction. */
  tokensUsed: number;
}

/** Which signal woke the dispatcher from the store: new log rows, or snapshots another instance refreshed. */
export type StoreSignal = 'changes' | 'due';

/** A subscription to the store's signals (see {@link MissionStorePort.watch}). */
export interface StoreWatch {
  /** True when new log rows are signalled; false means the dispatcher must probe for them. */
  readonly notifying: boolean;
  /** Ends the subscription. */
  close(): Promise<void>;
}

/**
 * The dispatcher's view of the sync log and the runner's tables (implemented over
 * @mana-ai/projection). Every comparison of times (due-ness, leases, the budget window) and every
 * stamp written happens on the database's clock, never on the instance's.
 */
export interface MissionStorePort {
  /** Brings mission and agent snapshots up to date with the log. */
  refresh(): Promise<RefreshSummary>;
  /** Claims up to `limit` due missions (leases; per-agent in-flight limits honoured). */
  claimDue(request: { limit: number }): Promise<MissionClaim[]>;
  /** Tokens the agent used in the last 24 hours (database time). */
  tokensUsedLast24h(userId: string, agentId: string): Promise<number>;
  /** Writes the iteration and the advanced `nextRunAt`, records usage, releases the lease. */
  writeIteration(claim: MissionClaim, request: WriteBackRequest): Promise<{ written: boolean }>;
  /**
   * Records token usage of a run that wrote nothing (failed loops count against the budget). Also
   * called after a failed `writeIteration`, which may have committed with the usage before its
   * answer was lost: a store must then not record it again (the claim's `iterationId` is in the log).
   */
  recordTokenUsage(claim: MissionClaim, agentId: string, tokensUsed: number): Promise<void>;
  /**
   * Ends the lease of a run that wrote nothing. With `retryAfterMs` the mission stays leased to this
   * instance for that long instead (a failed or skipped mission is not retried at once).
   */
  release(claim: MissionClaim, options?: { retryAfterMs?: number }): Promise<void>;
  /**
   * Extends the leases of running missions (the heartbeat) and returns those of `claims` whose lease
   * this instance still held. Optional: without it leases are never extended.
   */
  renew?(claims: readonly MissionClaim[]): Promise<readonly MissionClaim[]>;
  /**
   * Milliseconds (database time) until the earliest moment a mission may become claimable: ≤ 0 is
   * now, null is never. Optional: without it the dispatcher sleeps its longest sleep.
   */
  nextDueInMs?(): Promise<number | null>;
  /** Subscribes to the store's signals. Optional: without it the dispatcher probes or sleeps. */
  watch?(onSignal: (signal: StoreSignal) => void): Promise<StoreWatch>;
  /** One cheap probe: does the log hold rows the refresh has not read yet? */
  hasPendingChanges?(): Promise<boolean>;
  /** The database's clock (epoch ms): calibrates the descriptive stamps core builds. */
  databaseNow?(): Promise<number>;
}

/** Resolves a mission's linked inputs (grant unwrap, decrypt, audit) — @mana-ai/resolvers. */
export interface InputsPort {
  /**
   * Resolves the mission's inputs. `signal` aborts with the run's wall-time bound: stop starting new
   * work (the run ends at the bound either way).
   */
  resolve(request: { mission: Mission; agent: Agent | null; iterationId: string; signal?: AbortSignal }): Promise<ResolvedInput[]>;
}

/** Outcome of the research stage for one mission. */
export type ResearchOutcome = { kind: 'none' } | { kind: 'pending' } | { kind: 'ready'; inputs: ResolvedInput[] };

/** The research stage before planning — @mana-ai/research. */
export interface ResearchPort {
  /** Runs before input resolution: a pending deep-research job skips the mission for now. */
  prepare(request: { mission: Mission; iterationId: string }): Promise<ResearchOutcome>;
  /** Called after a plan that used the research result was written, so the result can be dropped. */
  consumed(request: { mission: Mission; iterationId: string }): Promise<void>;
}

/** What the planner produced for one mission. */
export type PlanOutcome =
  | { ok: true; calls: PlannedCall[]; summary: string; usage: TokenUsage; rounds: number }
  | { ok: false; reason: string; usage: TokenUsage };

/** The planner loop — @mana-ai/planner. */
export interface PlannerPort {
  plan(request: {
    mission: Mission;
    agent: Agent | null;
    inputs: ResolvedInput[];
    iterationId: string;
    /** The run this plan belongs to (for the planner's events and traces). */
    runId: string;
    tokensUsed24h: number;
    /** Aborts when the run is abandoned (shutdown gave up waiting): stop calling the LLM. */
    signal?: AbortSignal;
  }): Promise<PlanOutcome>;
}

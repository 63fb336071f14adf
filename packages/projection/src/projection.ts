import { type Agent, DEFAULT_TIME_ZONE, type EventChannel, type Logger, type SqlClient, type SqlTransaction, assertTimeZone, createEventBus, noopLogger } from '@mana-ai/core';
import {
  type ClaimOptions,
  type ClaimedMission,
  type LeaseStats,
  type MissionKey,
  type RenewOptions,
  type RenewedLease,
  claimDueMissions,
  leaseStats,
  releaseMissions,
  renewLeases,
} from './claims.js';
import type { ProjectionContext } from './context.js';
import { ProjectionError } from './errors.js';
import type { ProjectionEvents, RefreshResult } from './events.js';
import { type MissionOverview, listUserMissions, loadAgent, loadAgents } from './read-model.js';
import { type RefreshOptions, feedLagSeconds, hasPendingChanges, refreshSnapshots } from './refresh.js';
import { replayRecord } from './replay.js';
import { type ProjectionSignal, type ProjectionWatch, databaseNow, nextDueInMs, watchSignals } from './signals.js';
import { type PruneTokenUsageOptions, type TokenUsageEntry, pruneTokenUsage, recordTokenUsage, tokenUsageLast24h } from './token-usage.js';
import { withUser } from './with-user.js';
import { type WriteIterationInput, type WriteIterationResult, writeIteration } from './write-back.js';

/** Collaborators of {@link createProjection}. */
export interface ProjectionDeps {
  /** The process's postgres.js client (a role without BYPASSRLS, e.g. `mana_ai_runner`). */
  sql: SqlClient;
  /** Where refresh/claim/write-back events go (default: a private bus). */
  events?: EventChannel<ProjectionEvents>;
  logger?: Logger;
}

/** Options of {@link createProjection}. */
export interface ProjectionOptions {
  /** Feed rows per refresh batch and transaction (default 2000, max 10000). */
  batchSize?: number;
  /** Lease length of claimed missions in ms (default 600000 = 10 minutes). */
  leaseMs?: number;
  /** IANA zone for `daily`/`weekly` cadences of missions without `timezone` (default `Europe/Berlin`). */
  defaultTimeZone?: string;
}

/**
 * The projection's API: everything the runner does with the sync log. Every time compared across
 * instances (due, lease expiry, field stamps, the budget window) is PostgreSQL's clock.
 */
export interface Projection {
  /** Brings mission and agent snapshots up to date (see {@link refreshSnapshots}). */
  refresh(options?: RefreshOptions): Promise<RefreshResult>;
  /** Leases due missions, earliest first, O(limit) whatever the backlog (see {@link claimDueMissions}). */
  claimDue(options: ClaimOptions): Promise<ClaimedMission[]>;
  /** Ends `owner`'s leases on `missions`, or all of them. */
  release(owner: string, missions?: readonly MissionKey[]): Promise<number>;
  /** Extends `owner`'s leases on missions still running; returns the leases still held with their versions (see {@link renewLeases}). */
  renew(options: RenewOptions): Promise<RenewedLease[]>;
  /** Running and expired leases across all users (ids and times only). */
  leaseStats(): Promise<LeaseStats>;
  /** Seconds the change feed is held back by the oldest open transaction (see {@link feedLagSeconds}). */
  feedLag(): Promise<number>;
  /** The database's `clock_timestamp()` in epoch ms: calibrates a local clock offset for descriptive stamps. */
  databaseNow(): Promise<number>;
  /** Milliseconds (database time) until a mission may become claimable; ≤ 0 = now, null = nothing scheduled (see {@link nextDueInMs}). */
  nextDueInMs(): Promise<number | null>;
  /** True when the feed holds rows a refresh would read now: the poll without the change trigger (see {@link hasPendingChanges}). */
  hasPendingChanges(): Promise<boolean>;
  /** Calls `onSignal` on new mission/agent rows (`changes`) and on refreshes that applied rows (`due`) (see {@link watchSignals}). */
  watch(onSignal: (signal: ProjectionSignal) => void): Promise<ProjectionWatch>;
  /** Writes core's iteration and actor and the advanced `nextRunAt`, ends the lease (see {@link writeIteration}). */
  writeIteration(input: WriteIterationInput): Promise<WriteIterationResult>;
  /** Replays one record of any synced table under `withUser` (docs/wire-contract.md#last-writer-wins-replay): the resolvers' port. */
  replayRecord(userId: string, appId: string, table: string, recordId: string): Promise<Record<string, unknown> | null>;
  /** A user's agents that are not soft-deleted. */
  loadAgents(userId: string): Promise<Agent[]>;
  /** One agent, or null when unknown or soft-deleted. */
  loadAgent(userId: string, agentId: string): Promise<Agent | null>;
  /** An agent's token spend over the last 24 hours. */
  tokenUsageLast24h(userId: string, agentId: string): Promise<number>;
  /** Records token spend outside a write-back (failed loops, compaction). */
  recordTokenUsage(entry: TokenUsageEntry): Promise<void>;
  /** Deletes a bounded batch of token usage rows past the retention, across users; returns the count (see {@link pruneTokenUsage}). */
  pruneTokenUsage(options?: PruneTokenUsageOptions): Promise<number>;
  /** Operator view: a user's missions with state, next run, lease and last iteration. */
  listUserMissions(userId: string): Promise<MissionOverview[]>;
  /** Runs `fn` in a transaction scoped to `userId` for row-level security. */
  withUser<T>(userId: string, fn: (tx: SqlTransaction) => Promise<T>): Promise<T>;
  /** The bus the projection emits on. */
  readonly events: EventChannel<ProjectionEvents>;
}

/** Default lease length: long enough for a planner loop with retries. */
export const DEFAULT_LEASE_MS = 600_000;

/** Creates the projection over an injected postgres.js client. */
export function createProjection(deps: ProjectionDeps, options: ProjectionOptions = {}): Projection {
  if (!deps?.sql) throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', 'createProjection needs a sql client');
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  if (!Number.isFinite(leaseMs) || leaseMs <= 0) throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', 'leaseMs must be positive');
  const batchSize = options.batchSize ?? 2000;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) {
    throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', 'batchSize must be an integer 1..10000');
  }
  const defaultTimeZone = options.defaultTimeZone ?? DEFAULT_TIME_ZONE;
  try {
    assertTimeZone(defaultTimeZone);
  } catch (cause) {
    throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', 'defaultTimeZone is not a known IANA zone', { cause });
  }
  const context: ProjectionContext = {
    sql: deps.sql,
    events: deps.events ?? createEventBus<ProjectionEvents>(),
    logger: deps.logger ?? noopLogger,
    defaultTimeZone,
  };
  return {
    refresh: (refreshOptions) => refreshSnapshots(context, { batchSize, ...refreshOptions }),
    claimDue: (claimOptions) => claimDueMissions(context, { ...claimOptions, defaultLeaseMs: leaseMs }),
    release: (owner, missions) => releaseMissions(context, owner, missions),
    renew: (renewOptions) => renewLeases(context, { ...renewOptions, defaultLeaseMs: leaseMs }),
    leaseStats: () => leaseStats(context),
    feedLag: () => feedLagSeconds(context),
    databaseNow: () => databaseNow(context),
    nextDueInMs: () => nextDueInMs(context),
    hasPendingChanges: () => hasPendingChanges(context),
    watch: (onSignal) => watchSignals(context, onSignal),
    writeIteration: (input) => writeIteration(context, input),
    replayRecord: (userId, appId, table, recordId) => replayRecord(context, userId, appId, table, recordId),
    loadAgents: (userId) => loadAgents(context, userId),
    loadAgent: (userId, agentId) => loadAgent(context, userId, agentId),
    tokenUsageLast24h: (userId, agentId) => tokenUsageLast24h(context, userId, agentId),
    recordTokenUsage: (entry) => recordTokenUsage(context, entry),
    pruneTokenUsage: (pruneOptions) => pruneTokenUsage(context, pruneOptions),
    listUserMissions: (userId) => listUserMissions(context, userId),
    withUser: (userId, fn) => withUser(context.sql, userId, fn),
    events: context.events,
  };
}

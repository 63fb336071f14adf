import type { Mission } from '@mana-ai/core';
import type { ProjectionContext } from './context.js';
import { ProjectionError } from './errors.js';
import { toMission } from './records.js';

/** A due mission leased to one claimer until `leaseUntil`. */
export interface ClaimedMission {
  mission: Mission;
  /** The due time this claim is for (`toISOString()` form): the slot the iteration id is derived from. */
  dueSlot: string;
  /** Who holds the lease. */
  owner: string;
  /** When the lease expires on the database's clock and the mission becomes claimable again (`toISOString()` form). */
  leaseUntil: string;
  /** The snapshot the claim read under its row lock: pass it to `writeIteration` as `claimed` to skip the write-back's read. */
  snapshot: ClaimedSnapshot;
}

/**
 * A mission's snapshot as its claim read it (migration 0011), in the same statement as the lease
 * update. The write-back's first attempt merges from it instead of reading the snapshot again, and
 * writes only when the snapshot is still at `version` (see `writeIteration`). Treat it as read-only.
 */
export interface ClaimedSnapshot {
  /** The stored snapshot record (with its `__fieldMeta` stamps), as the claim read it. */
  readonly record: Readonly<Record<string, unknown>>;
  /** The snapshot row's version right after the claim's lease update (its `xmin`). */
  readonly version: string;
  /** The database's time of the claim's read: epoch milliseconds, truncated to the millisecond. */
  readonly readAtMs: number;
  /** `performance.now()` when the claim's answer arrived: the write-back adds the time elapsed since to `readAtMs`. */
  readonly receivedAt: number;
}

/** Parameters of {@link claimDueMissions}. */
export interface ClaimOptions {
  /** Lease owner: unique per instance (and stable across its ticks). */
  owner: string;
  /** Claim at most this many missions, 1..10000. */
  limit: number;
  /** Lease length in ms (default: the projection's `leaseMs`). */
  leaseMs?: number;
}

/** The key of one mission snapshot. */
export interface MissionKey {
  userId: string;
  missionId: string;
}

// Concurrent claimers see the same first candidates; a wider candidate set lets the one that finds
// them locked take the next ones. Within an agent the candidates are exactly its first `spare`
// claimable missions (spare = limit - live leases), the same set for every claimer, so any subset
// that SKIP LOCKED leaves to one claimer keeps the limit across all of them.
const CANDIDATE_FACTOR = 2;
const CLAIM_ATTEMPTS = 3;

function assertOwner(owner: unknown): asserts owner is string {
  if (typeof owner !== 'string' || owner === '') {
    throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', 'a lease owner is required');
  }
}

// A lease is a crash-takeover delay, not a schedule: anything longer is a unit mistake.
const MAX_LEASE_MS = 30 * 86_400_000;

function assertLeaseMs(leaseMs: number): void {
  if (!Number.isFinite(leaseMs) || leaseMs <= 0 || leaseMs > MAX_LEASE_MS) {
    throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', 'leaseMs must be positive (at most 30 days)');
  }
}

/**
 * Leases up to `limit` due missions (active, not deleted, `next_run_at <= now()`, no live lease) to
 * `owner` until the database's now + `leaseMs`, earliest due first. Every time is the database's:
 * instance clocks play no part. Rows other claimers are locking are skipped (`SKIP LOCKED`), and an
 * agent never has more live leases than its `maxConcurrentMissions` (missing = 1, not a number =
 * unlimited, unknown or deleted agent = unlimited) across all instances. Expired leases are
 * claimable again. Cost grows with `limit` and the leases in flight, not with the due backlog: the
 * missions of an agent at its limit are not visited.
 */
export async function claimDueMissions(
  context: ProjectionContext,
  options: ClaimOptions & { defaultLeaseMs: number },
): Promise<ClaimedMission[]> {
  assertOwner(options.owner);
  const limit = Math.floor(options.limit);
  if (!Number.isFinite(limit) || limit < 1 || limit > 10_000) {
    throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', 'claim limit must be 1..10000');
  }
  const leaseMs = Math.round(options.leaseMs ?? options.defaultLeaseMs);
  assertLeaseMs(leaseMs);
  const startedAt = performance.now();
  const claimedRows: ClaimedRow[] = [];
  // Rows other claimers are locking right now are skipped; retry a few times for the remainder so a
  // claimer under contention does not come back short while due missions remain.
  for (let attempt = 0; attempt < CLAIM_ATTEMPTS && claimedRows.length < limit; attempt++) {
    const wanted = limit - claimedRows.length;
    const result = await claimOnce(context, options.owner, wanted, wanted * CANDIDATE_FACTOR, leaseMs);
    claimedRows.push(...result.claimed);
    // Done unless rows were locked by other claimers, or lanes with early heads were corrected (the
    // missions behind them are candidates now).
    if (result.claimed.length >= result.candidates && result.healed === 0) break;
  }
  const claimed = claimedRows
    .map((row) => ({
      mission: toMission(row.user_id, { ...row.record, id: row.mission_id }, (entry) => {
        const skipped = { userId: row.user_id, missionId: row.mission_id, ...entry };
        context.logger.warn(skipped, 'malformed mission entry skipped');
        context.events.emit('entry.skipped', skipped);
      }),
      dueSlot: row.due_slot,
      owner: options.owner,
      leaseUntil: row.lease_until,
      snapshot: { record: row.record, version: row.version, readAtMs: Math.round(row.read_at_ms), receivedAt: row.receivedAt },
    }))
    .sort((a, b) => (a.dueSlot < b.dueSlot ? -1 : a.dueSlot > b.dueSlot ? 1 : 0));
  context.events.emit('missions.claimed', { owner: options.owner, limit, claimed: claimed.length, durationMs: performance.now() - startedAt });
  return claimed;
}

interface ClaimRow {
  user_id: string | null;
  mission_id: string;
  due_slot: string;
  lease_until: string;
  candidates: string;
  healed: string;
  record: Record<string, unknown> | null;
  version: string | null;
  read_at_ms: number | null;
}

/**
 * A claimed mission's key, due slot and lease end, with its record, version and read time loaded
 * under its user's RLS scope, and when the answer arrived (`performance.now()`).
 */
type ClaimedRow = ClaimRow & { user_id: string; record: Record<string, unknown>; version: string; read_at_ms: number; receivedAt: number };

/**
 * One claim, one statement: `mana_ai.claim_mission_snapshots` (migration 0011, `SECURITY INVOKER`;
 * `claim_missions` of migration 0010 plus the snapshot version and read time) calls the
 * definer function `mana_ai.claim_due_missions` (the walk over every user's due missions returns
 * keys, due slots and lease ends only, see migration 0006), then reads each claimed record with
 * `app.current_user_id` set to its user, so row-level security returns that user's rows and nothing
 * else. The records are read under the claim's row locks: what is returned is the record that was
 * claimed, with the snapshot row's version after the lease update and the database's time of the
 * read, for the write-back's fast path.
 */
async function claimOnce(context: ProjectionContext, owner: string, limit: number, candidates: number, leaseMs: number) {
  const result = await context.sql<ClaimRow[]>`
    SELECT user_id, mission_id, due_slot, lease_until, candidates::text, healed::text, record, version, read_at_ms
    FROM mana_ai.claim_mission_snapshots(${owner}, ${limit}::int, ${candidates}::int, ${leaseMs}::float8)`;
  const receivedAt = performance.now();
  const claimed = result
    .filter((row): row is Omit<ClaimedRow, 'receivedAt'> => row.user_id !== null && row.record !== null && row.version !== null && row.read_at_ms !== null)
    .map((row): ClaimedRow => ({ ...row, receivedAt }));
  return { claimed, candidates: Number(result[0]?.candidates ?? 0), healed: Number(result[0]?.healed ?? 0) };
}

/** Ends `owner`'s leases on `missions` (all of its leases when omitted); returns how many ended. */
export async function releaseMissions(context: ProjectionContext, owner: string, missions?: readonly MissionKey[]): Promise<number> {
  assertOwner(owner);
  if (missions?.length === 0) return 0;
  const keys = missions === undefined ? null : keysJson(missions);
  const [row] = await context.sql<{ released: number }[]>`
    SELECT mana_ai.release_mission_leases(${owner}, ${keys}::text::jsonb) AS released`;
  const released = row?.released ?? 0;
  context.events.emit('missions.released', { owner, released });
  return released;
}

function keysJson(missions: readonly MissionKey[]): string {
  return JSON.stringify(missions.map((m) => ({ user_id: m.userId, mission_id: m.missionId })));
}

/** Options of {@link renewLeases}. */
export interface RenewOptions {
  /** Who holds the leases; leases held by anybody else (or by nobody) are left alone. */
  owner: string;
  /** The missions whose leases to extend. */
  missions: readonly MissionKey[];
  /** New lease length from the database's now in ms (default: the projection's `leaseMs`). */
  leaseMs?: number;
}

/**
 * A lease {@link renewLeases} extended: the mission's key with its snapshot row's version after the
 * renewal and right before it (migration 0012). The renewal changes the lease columns only, so a
 * holder of a claimed snapshot at `versionBefore` may move it to `version`; a holder of any other
 * version saw the row change otherwise (a refresh applied a user's edit, a write) and must not.
 */
export interface RenewedLease extends MissionKey {
  /** The snapshot row's version (`xmin`) after the renewal. */
  version: string;
  /** The snapshot row's version the renewal replaced: locked first, so nothing changed the row in between. */
  versionBefore: string;
}

/**
 * Extends `owner`'s leases on `missions` to the database's now + `leaseMs` (the heartbeat of a long run), and
 * returns the leases it still held, with the snapshot row's version before and after the renewal. A
 * key missing from the result lost its lease: it expired and another claimer took the mission, or it
 * was released.
 */
export async function renewLeases(context: ProjectionContext, options: RenewOptions & { defaultLeaseMs: number }): Promise<RenewedLease[]> {
  assertOwner(options.owner);
  const leaseMs = Math.round(options.leaseMs ?? options.defaultLeaseMs);
  assertLeaseMs(leaseMs);
  if (options.missions.length === 0) return [];
  // A heartbeat must not queue behind a row lock held by a stuck session: the function gives up
  // after its lock timeout (5 s) and the next beat tries again.
  const rows = await context.sql<{ user_id: string; mission_id: string; version: string; version_before: string }[]>`
    SELECT user_id, mission_id, version, version_before
    FROM mana_ai.renew_mission_lease_versions(${options.owner}, ${keysJson(options.missions)}::text::jsonb, ${leaseMs}::float8)`;
  const held = rows.map((row) => ({ userId: row.user_id, missionId: row.mission_id, version: row.version, versionBefore: row.version_before }));
  context.events.emit('missions.renewed', { owner: options.owner, requested: options.missions.length, renewed: held.length });
  return held;
}

/** Counts of mission leases at one moment, for operators and the stuck-lease alert. */
export interface LeaseStats {
  /** Missions whose lease is still running. */
  active: number;
  /**
   * Due missions whose lease ran out without being released and that nobody claimed again: the holder
   * crashed or hung and no instance takes them over. A lease that ran out on a mission that is no
   * longer due (held for a retry, then paused, deleted or rescheduled by its user) is not stuck.
   */
  expired: number;
  /** The oldest expiry among the expired leases (`toISOString()` form), or null. */
  oldestExpiredAt: string | null;
}

/** Counts running and expired leases as of the database's now (across users: lease columns only, no content). */
export async function leaseStats(context: ProjectionContext): Promise<LeaseStats> {
  const [row] = await context.sql<{ active: string; expired: string; oldest: string | null }[]>`
    SELECT active::text, expired::text, oldest_expired AS oldest FROM mana_ai.mission_lease_stats()`;
  return {
    active: Number.parseInt(row?.active ?? '0', 10),
    expired: Number.parseInt(row?.expired ?? '0', 10),
    oldestExpiredAt: row?.oldest ?? null,
  };
}

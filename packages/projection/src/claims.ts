import type { Mission } from '@mana-ai/core';
import type { TransactionSql } from 'postgres';
import { type ProjectionContext, MILLISECOND_STAMP } from './context.js';
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
/** How long a lease renewal waits for a row lock before it fails (the next beat retries). */
const RENEW_LOCK_TIMEOUT_MS = 5000;
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
  const claimedRows: ClaimRow[] = [];
  // Rows other claimers are locking right now are skipped; retry a few times for the remainder so a
  // claimer under contention does not come back short while due missions remain.
  for (let attempt = 0; attempt < CLAIM_ATTEMPTS && claimedRows.length < limit; attempt++) {
    const wanted = limit - claimedRows.length;
    const result = await claimOnce(context, options.owner, wanted, wanted * CANDIDATE_FACTOR, leaseMs);
    const rows = result.filter((row) => row.user_id !== null);
    claimedRows.push(...rows);
    // Done unless rows were locked by other claimers, or lanes with early heads were corrected (the
    // missions behind them are candidates now).
    if (rows.length >= Number(result[0]?.candidates ?? 0) && Number(result[0]?.healed ?? 0) === 0) break;
  }
  const claimed = claimedRows
    .map((row) => ({
      mission: toMission(row.user_id, { ...row.record, id: row.mission_id }),
      dueSlot: row.due_slot,
      owner: options.owner,
      leaseUntil: row.lease_until,
    }))
    .sort((a, b) => (a.dueSlot < b.dueSlot ? -1 : a.dueSlot > b.dueSlot ? 1 : 0));
  context.events.emit('missions.claimed', { owner: options.owner, limit, claimed: claimed.length, durationMs: performance.now() - startedAt });
  return claimed;
}

interface ClaimRow {
  user_id: string;
  mission_id: string;
  record: Record<string, unknown>;
  due_slot: string;
  lease_until: string;
  candidates: string;
  healed: string;
}

/**
 * One claim statement. Candidates come from two ordered index walks: missions without an agent
 * (no limit), and the lanes of agents in head order (a lane's head is its earliest scheduled
 * mission, leased or not), each lane giving its first `spare` claimable missions. A lane at its
 * limit is skipped after one probe. A lane can only come up empty when its due missions are all
 * leased, so at most as many lanes as have live leases: the walk goes that much further than
 * `candidates` lanes, and the earliest due missions are still the ones taken.
 */
async function claimOnce(context: ProjectionContext, owner: string, limit: number, candidates: number, leaseMs: number): Promise<ClaimRow[]> {
  return context.sql.begin(async (tx) => {
    // A custom plan per call costs more than the claim itself, and PostgreSQL keeps choosing one on
    // a large backlog (it prices a generic LIMIT $n by the table size): the generic plan is the
    // same walk, planned once per connection.
    await tx`SELECT set_config('plan_cache_mode', 'force_generic_plan', true)`;
    return claimStatement(tx, owner, limit, candidates, leaseMs);
  });
}

function claimStatement(tx: TransactionSql, owner: string, limit: number, candidates: number, leaseMs: number): Promise<ClaimRow[]> {
  return tx<ClaimRow[]>`
    WITH free AS (
      SELECT s.user_id, s.mission_id, s.next_run_at
      FROM mana_ai.mission_snapshots s
      WHERE s.active AND s.agent_id IS NULL AND s.next_run_at IS NOT NULL AND s.next_run_at <= now()
        AND (s.lease_until IS NULL OR s.lease_until <= now())
      ORDER BY s.next_run_at, s.user_id, s.mission_id
      LIMIT ${candidates}
    ),
    lanes AS (
      SELECT l.user_id, l.agent_id, c.spare
      FROM mana_ai.mission_lanes l
      CROSS JOIN LATERAL (
        SELECT CASE WHEN l.max_concurrent IS NULL THEN ${candidates}::int
          ELSE least(${candidates}::numeric, floor(l.max_concurrent) - (
            SELECT count(*) FROM mana_ai.mission_snapshots r
            WHERE r.user_id = l.user_id AND r.agent_id = l.agent_id AND r.lease_until > now()))::int
        END AS spare
      ) c
      WHERE l.head_at <= now() AND (l.max_concurrent IS NULL OR l.max_concurrent >= 1) AND c.spare > 0
      ORDER BY l.head_at, l.user_id, l.agent_id
      LIMIT ${candidates} + (
        SELECT count(*) FROM (
          SELECT DISTINCT r.user_id, r.agent_id FROM mana_ai.mission_snapshots r
          WHERE r.lease_until > now() AND r.agent_id IS NOT NULL) AS leased)
    ),
    lane_missions AS (
      SELECT m.user_id, m.mission_id, m.next_run_at, l.agent_id
      FROM lanes l
      CROSS JOIN LATERAL (
        SELECT s.user_id, s.mission_id, s.next_run_at FROM mana_ai.mission_snapshots s
        WHERE s.user_id = l.user_id AND s.agent_id = l.agent_id AND s.active
          AND s.next_run_at IS NOT NULL AND s.next_run_at <= now()
          AND (s.lease_until IS NULL OR s.lease_until <= now())
        ORDER BY s.next_run_at, s.mission_id
        LIMIT l.spare
      ) m
    ),
    -- A write-back that advances a mission leaves its lane's head early (never late): a lane walked
    -- here that yields no due mission gets its head corrected, so it is not walked again.
    healed AS (
      UPDATE mana_ai.mission_lanes h SET head_at = e.head_at
      FROM lanes l
      CROSS JOIN LATERAL (
        SELECT min(s.next_run_at) AS head_at FROM mana_ai.mission_snapshots s
        WHERE s.user_id = l.user_id AND s.agent_id = l.agent_id AND s.active AND s.next_run_at IS NOT NULL
      ) e
      WHERE h.user_id = l.user_id AND h.agent_id = l.agent_id AND h.head_at IS DISTINCT FROM e.head_at
        AND NOT EXISTS (SELECT 1 FROM lane_missions m WHERE m.user_id = l.user_id AND m.agent_id = l.agent_id)
      RETURNING h.user_id
    ),
    picked AS (
      SELECT c.user_id, c.mission_id, c.next_run_at
      FROM (SELECT user_id, mission_id, next_run_at FROM free UNION ALL SELECT user_id, mission_id, next_run_at FROM lane_missions) AS c
      ORDER BY c.next_run_at, c.user_id, c.mission_id
      LIMIT ${candidates}
    ),
    locked AS (
      SELECT s.user_id, s.mission_id FROM mana_ai.mission_snapshots s
      JOIN picked p ON p.user_id = s.user_id AND p.mission_id = s.mission_id
      WHERE s.active AND s.next_run_at IS NOT NULL AND s.next_run_at <= now()
        AND (s.lease_until IS NULL OR s.lease_until <= now())
      ORDER BY p.next_run_at, p.user_id, p.mission_id
      LIMIT ${limit}
      FOR UPDATE OF s SKIP LOCKED
    ),
    updated AS (
      UPDATE mana_ai.mission_snapshots s
      SET lease_owner = ${owner}, lease_until = now() + make_interval(secs => ${leaseMs / 1000})
      FROM locked l
      WHERE s.user_id = l.user_id AND s.mission_id = l.mission_id
      RETURNING s.user_id, s.mission_id, s.record,
        to_char(s.next_run_at AT TIME ZONE 'UTC', ${MILLISECOND_STAMP}) AS due_slot,
        to_char(s.lease_until AT TIME ZONE 'UTC', ${MILLISECOND_STAMP}) AS lease_until
    )
    SELECT u.user_id, u.mission_id, u.record, u.due_slot, u.lease_until, (SELECT count(*) FROM picked)::text AS candidates,
      (SELECT count(*) FROM healed)::text AS healed
    FROM (SELECT 1) AS one LEFT JOIN updated u ON true`;
}

/** Ends `owner`'s leases on `missions` (all of its leases when omitted); returns how many ended. */
export async function releaseMissions(context: ProjectionContext, owner: string, missions?: readonly MissionKey[]): Promise<number> {
  assertOwner(owner);
  let released: number;
  if (missions === undefined) {
    const result = await context.sql`
      UPDATE mana_ai.mission_snapshots SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ${owner}`;
    released = result.count;
  } else {
    if (missions.length === 0) return 0;
    const keys = JSON.stringify(missions.map((m) => ({ user_id: m.userId, mission_id: m.missionId })));
    const result = await context.sql`
      UPDATE mana_ai.mission_snapshots s SET lease_owner = NULL, lease_until = NULL
      FROM jsonb_to_recordset(${keys}::text::jsonb) AS k(user_id text, mission_id text)
      WHERE s.user_id = k.user_id AND s.mission_id = k.mission_id AND s.lease_owner = ${owner}`;
    released = result.count;
  }
  context.events.emit('missions.released', { owner, released });
  return released;
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
 * Extends `owner`'s leases on `missions` to the database's now + `leaseMs` (the heartbeat of a long run), and
 * returns the keys it still held. A key missing from the result lost its lease: it expired and
 * another claimer took the mission, or it was released.
 */
export async function renewLeases(context: ProjectionContext, options: RenewOptions & { defaultLeaseMs: number }): Promise<MissionKey[]> {
  assertOwner(options.owner);
  const leaseMs = Math.round(options.leaseMs ?? options.defaultLeaseMs);
  assertLeaseMs(leaseMs);
  if (options.missions.length === 0) return [];
  const keys = JSON.stringify(options.missions.map((m) => ({ user_id: m.userId, mission_id: m.missionId })));
  // A heartbeat must not queue behind a row lock held by a stuck session: it fails fast instead and
  // the next beat tries again.
  const rows = await context.sql.begin(async (tx) => {
    await tx`SELECT set_config('lock_timeout', ${`${RENEW_LOCK_TIMEOUT_MS}ms`}, true)`;
    return tx<{ user_id: string; mission_id: string }[]>`
      UPDATE mana_ai.mission_snapshots s SET lease_until = clock_timestamp() + make_interval(secs => ${leaseMs / 1000})
      FROM jsonb_to_recordset(${keys}::text::jsonb) AS k(user_id text, mission_id text)
      WHERE s.user_id = k.user_id AND s.mission_id = k.mission_id AND s.lease_owner = ${options.owner}
      RETURNING s.user_id, s.mission_id`;
  });
  const held = rows.map((row) => ({ userId: row.user_id, missionId: row.mission_id }));
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
    SELECT count(*) FILTER (WHERE lease_until > now())::text AS active,
           count(*) FILTER (WHERE lease_until <= now() AND due)::text AS expired,
           to_char(min(lease_until) FILTER (WHERE lease_until <= now() AND due) AT TIME ZONE 'UTC', ${MILLISECOND_STAMP}) AS oldest
    FROM (
      SELECT lease_until, active AND next_run_at IS NOT NULL AND next_run_at <= now() AS due
      FROM mana_ai.mission_snapshots WHERE lease_until IS NOT NULL
    ) AS leased`;
  return {
    active: Number.parseInt(row?.active ?? '0', 10),
    expired: Number.parseInt(row?.expired ?? '0', 10),
    oldestExpiredAt: row?.oldest ?? null,
  };
}

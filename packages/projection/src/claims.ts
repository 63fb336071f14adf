import type { Mission } from '@mana-ai/core';
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
  /** When the lease expires and the mission becomes claimable again (`toISOString()` form). */
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

// Concurrent claimers rank the same missions first; a wider candidate set lets the one that finds
// them locked take the next ones. Every candidate fits its agent's remaining capacity on its own,
// so taking any subset keeps the limit.
const CANDIDATE_FACTOR = 4;
/** How long a lease renewal waits for a row lock before it fails (the next beat retries). */
const RENEW_LOCK_TIMEOUT_MS = 5000;
const CLAIM_ATTEMPTS = 3;

function assertOwner(owner: unknown): asserts owner is string {
  if (typeof owner !== 'string' || owner === '') {
    throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', 'a lease owner is required');
  }
}

/**
 * Leases up to `limit` due missions (active, not deleted, `next_run_at <= now`, no live lease) to
 * `owner`, earliest due first. Rows other claimers are locking are skipped (`SKIP LOCKED`), and an
 * agent never has more leased missions than its `maxConcurrentMissions` (missing = 1, not a number
 * = unlimited, unknown or deleted agent = unlimited) across all instances. Expired leases are
 * claimable again.
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
  const leaseMs = options.leaseMs ?? options.defaultLeaseMs;
  if (!Number.isFinite(leaseMs) || leaseMs <= 0) {
    throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', 'leaseMs must be positive');
  }
  const nowMs = context.clock.now();
  const now = new Date(nowMs).toISOString();
  const leaseUntil = new Date(nowMs + leaseMs).toISOString();
  const claimedRows: ClaimRow[] = [];
  // Rows other claimers are locking right now are skipped; retry a few times for the remainder so a
  // claimer under contention does not come back short while due missions remain.
  for (let attempt = 0; attempt < CLAIM_ATTEMPTS && claimedRows.length < limit; attempt++) {
    const wanted = limit - claimedRows.length;
    const result = await claimOnce(context, options.owner, wanted, wanted * CANDIDATE_FACTOR, now, leaseUntil);
    const rows = result.filter((row) => row.user_id !== null);
    claimedRows.push(...rows);
    if (rows.length >= Number(result[0]?.candidates ?? 0)) break;
  }
  const claimed = claimedRows
    .map((row) => ({
      mission: toMission(row.user_id, { ...row.record, id: row.mission_id }),
      dueSlot: row.due_slot,
      owner: options.owner,
      leaseUntil,
    }))
    .sort((a, b) => (a.dueSlot < b.dueSlot ? -1 : a.dueSlot > b.dueSlot ? 1 : 0));
  context.events.emit('missions.claimed', { owner: options.owner, limit, claimed: claimed.length });
  return claimed;
}

interface ClaimRow {
  user_id: string;
  mission_id: string;
  record: Record<string, unknown>;
  due_slot: string;
  candidates: string;
}

async function claimOnce(
  context: ProjectionContext,
  owner: string,
  limit: number,
  candidates: number,
  now: string,
  leaseUntil: string,
): Promise<ClaimRow[]> {
  return context.sql<ClaimRow[]>`
    WITH due AS (
      SELECT s.user_id, s.mission_id, s.record->>'agentId' AS agent_id, s.next_run_at,
             row_number() OVER (PARTITION BY s.user_id, s.record->>'agentId' ORDER BY s.next_run_at, s.mission_id) AS rank
      FROM mana_ai.mission_snapshots s
      WHERE s.record->>'state' = 'active' AND (s.record->>'deletedAt') IS NULL
        AND s.next_run_at IS NOT NULL AND s.next_run_at <= ${now}::text::timestamptz
        AND (s.lease_until IS NULL OR s.lease_until <= ${now}::text::timestamptz)
    ),
    in_flight AS (
      SELECT s.user_id, s.record->>'agentId' AS agent_id, count(*) AS running
      FROM mana_ai.mission_snapshots s
      WHERE s.lease_until IS NOT NULL AND s.lease_until > ${now}::text::timestamptz AND s.record->>'agentId' IS NOT NULL
      GROUP BY 1, 2
    ),
    limits AS (
      SELECT d.user_id, d.mission_id, d.next_run_at, d.rank, coalesce(i.running, 0) AS running,
        CASE
          WHEN a.agent_id IS NULL THEN NULL
          WHEN jsonb_typeof(a.record->'maxConcurrentMissions') IS NULL
            OR jsonb_typeof(a.record->'maxConcurrentMissions') = 'null' THEN 1
          WHEN jsonb_typeof(a.record->'maxConcurrentMissions') = 'number' THEN (a.record->>'maxConcurrentMissions')::numeric
          WHEN jsonb_typeof(a.record->'maxConcurrentMissions') = 'string'
            AND a.record->>'maxConcurrentMissions' ~ '^[[:space:]]*-?[0-9]+([.][0-9]+)?[[:space:]]*$'
            THEN trim(a.record->>'maxConcurrentMissions')::numeric
          ELSE NULL
        END AS max_concurrent
      FROM due d
      LEFT JOIN mana_ai.agent_snapshots a
        ON d.agent_id IS NOT NULL AND a.user_id = d.user_id AND a.agent_id = d.agent_id AND (a.record->>'deletedAt') IS NULL
      LEFT JOIN in_flight i ON i.user_id = d.user_id AND i.agent_id = d.agent_id
    ),
    picked AS (
      SELECT l.user_id, l.mission_id, l.next_run_at FROM limits l
      WHERE l.max_concurrent IS NULL OR l.rank + l.running <= l.max_concurrent
      ORDER BY l.next_run_at, l.user_id, l.mission_id
      LIMIT ${candidates}
    ),
    locked AS (
      SELECT s.user_id, s.mission_id FROM mana_ai.mission_snapshots s
      JOIN picked p ON p.user_id = s.user_id AND p.mission_id = s.mission_id
      WHERE s.record->>'state' = 'active' AND (s.record->>'deletedAt') IS NULL
        AND s.next_run_at IS NOT NULL AND s.next_run_at <= ${now}::text::timestamptz
        AND (s.lease_until IS NULL OR s.lease_until <= ${now}::text::timestamptz)
      ORDER BY p.next_run_at, p.user_id, p.mission_id
      LIMIT ${limit}
      FOR UPDATE OF s SKIP LOCKED
    ),
    updated AS (
      UPDATE mana_ai.mission_snapshots s
      SET lease_owner = ${owner}, lease_until = ${leaseUntil}::text::timestamptz
      FROM locked l
      WHERE s.user_id = l.user_id AND s.mission_id = l.mission_id
      RETURNING s.user_id, s.mission_id, s.record, to_char(s.next_run_at AT TIME ZONE 'UTC', ${MILLISECOND_STAMP}) AS due_slot
    )
    SELECT u.user_id, u.mission_id, u.record, u.due_slot, (SELECT count(*) FROM picked)::text AS candidates
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
  /** New lease length from now in ms (default: the projection's `leaseMs`). */
  leaseMs?: number;
}

/**
 * Extends `owner`'s leases on `missions` to now + `leaseMs` (the heartbeat of a long run), and
 * returns the keys it still held. A key missing from the result lost its lease: it expired and
 * another claimer took the mission, or it was released.
 */
export async function renewLeases(context: ProjectionContext, options: RenewOptions & { defaultLeaseMs: number }): Promise<MissionKey[]> {
  assertOwner(options.owner);
  const leaseMs = options.leaseMs ?? options.defaultLeaseMs;
  if (!Number.isFinite(leaseMs) || leaseMs <= 0) {
    throw new ProjectionError('PROJECTION_INVALID_ARGUMENT', 'leaseMs must be positive');
  }
  if (options.missions.length === 0) return [];
  const leaseUntil = new Date(context.clock.now() + leaseMs).toISOString();
  const keys = JSON.stringify(options.missions.map((m) => ({ user_id: m.userId, mission_id: m.missionId })));
  // A heartbeat must not queue behind a row lock held by a stuck session: it fails fast instead and
  // the next beat tries again.
  const rows = await context.sql.begin(async (tx) => {
    await tx`SELECT set_config('lock_timeout', ${`${RENEW_LOCK_TIMEOUT_MS}ms`}, true)`;
    return tx<{ user_id: string; mission_id: string }[]>`
      UPDATE mana_ai.mission_snapshots s SET lease_until = ${leaseUntil}::text::timestamptz
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
  /** Missions whose lease ran out without being released: the holder crashed or hung. */
  expired: number;
  /** The oldest expiry among the expired leases (`toISOString()` form), or null. */
  oldestExpiredAt: string | null;
}

/** Counts running and expired leases as of the clock's now (across users: lease columns only, no content). */
export async function leaseStats(context: ProjectionContext): Promise<LeaseStats> {
  const now = new Date(context.clock.now()).toISOString();
  const [row] = await context.sql<{ active: string; expired: string; oldest: Date | null }[]>`
    SELECT count(*) FILTER (WHERE lease_until > ${now}::text::timestamptz)::text AS active,
           count(*) FILTER (WHERE lease_until <= ${now}::text::timestamptz)::text AS expired,
           min(lease_until) FILTER (WHERE lease_until <= ${now}::text::timestamptz) AS oldest
    FROM mana_ai.mission_snapshots WHERE lease_until IS NOT NULL`;
  return {
    active: Number.parseInt(row?.active ?? '0', 10),
    expired: Number.parseInt(row?.expired ?? '0', 10),
    oldestExpiredAt: row?.oldest ? new Date(row.oldest).toISOString() : null,
  };
}

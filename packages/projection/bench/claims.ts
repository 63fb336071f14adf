/**
 * Claim cost against the due backlog (DESIGN §5, "claims O(batch)"): one claim of 32 with 100,000
 * missions due vs with 1,000 due, both projected through the real refresh from the same shape of
 * log: a third without agent, the rest spread over agents with a limit of 2, and one agent at its
 * limit of 1 holding a tenth of the backlog (the missions a claim must not walk).
 */
import type { Sql } from 'postgres';
import { type Projection, createProjection } from '../src/projection.js';

/** Claims timed per backlog; each claim is released again, so every claim sees the same backlog. */
const CLAIMS = 41;
const WARMUP = 5;
const BATCH = 32;

/** One backlog's figures. */
export interface ClaimFigures {
  due: number;
  /** Median wall time of one claim of 32, ms. */
  claimMs: number;
  /** Median wall time of `nextDueInMs()`, ms. */
  nextDueMs: number;
  claimed: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Writes `due` due missions (and their agents) into the log and projects them. */
async function loadBacklog(sql: Sql, due: number): Promise<void> {
  const users = Math.max(1, Math.floor(due / 20));
  const agents = Math.max(1, Math.floor(due / 30));
  const big = Math.floor(due / 10);
  await sql`
    INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_meta, client_id)
    SELECT 'ai', 'agents', 'a-' || g, 'u-' || (g % ${users}), 'insert',
           jsonb_build_object('id', 'a-' || g, 'name', 'Agent ' || g, 'state', 'active', 'maxConcurrentMissions', 2),
           '{}'::jsonb, 'bench'
    FROM generate_series(0, ${agents - 1}) AS g`;
  await sql`
    INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_meta, client_id)
    VALUES ('ai', 'agents', 'a-big', 'u-big', 'insert', '{"id":"a-big","name":"Big","state":"active","maxConcurrentMissions":1}', '{}', 'bench')`;
  // Due over the last day; the big agent's missions are the oldest, so a claim meets them first.
  await sql`
    INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_meta, client_id)
    SELECT 'ai', 'aiMissions', 'm-' || g, CASE WHEN g < ${big} THEN 'u-big' ELSE 'u-' || (g % ${users}) END, 'insert',
           jsonb_build_object('id', 'm-' || g, 'title', 'Mission ' || g, 'objective', 'Plane meine Woche', 'state', 'active',
             'nextRunAt', to_char((now() - interval '1 day' + g * (interval '1 day' / ${due})) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
             'cadence', jsonb_build_object('kind', 'interval', 'everyMinutes', 60), 'inputs', '[]'::jsonb, 'iterations', '[]'::jsonb)
             || CASE WHEN g < ${big} THEN jsonb_build_object('agentId', 'a-big')
                     WHEN g % 3 = 0 THEN '{}'::jsonb
                     ELSE jsonb_build_object('agentId', 'a-' || (g % ${agents})) END,
           '{}'::jsonb, 'bench'
    FROM generate_series(0, ${due - 1}) AS g`;
  await createProjection({ sql }, { batchSize: 10_000 }).refresh();
  await sql`VACUUM ANALYZE`;
}

/** A loaded backlog, ready to be claimed from. */
export interface Backlog {
  due: number;
  projection: Projection;
}

/** Loads `due` due missions into the (migrated, empty) database of `sql` and leaves its big agent at its limit. */
export async function prepareBacklog(sql: Sql, due: number): Promise<Backlog> {
  await loadBacklog(sql, due);
  const projection = createProjection({ sql }, { leaseMs: 60_000 });
  // The big agent sits at its limit, as it would in a running system.
  const [busy] = await projection.claimDue({ owner: 'busy', limit: 1 });
  if (busy?.mission.agentId !== 'a-big') throw new Error('the oldest due mission should be the big agent’s');
  return { due, projection };
}

/**
 * Times claims of 32 (each released again, so every claim sees the same backlog) and
 * `nextDueInMs()`, alternating between the backlogs round by round so that both see the same noise.
 */
export async function measureClaims(backlogs: readonly Backlog[]): Promise<ClaimFigures[]> {
  const samples = backlogs.map(() => ({ claims: [] as number[], nextDue: [] as number[] }));
  for (let round = 0; round < WARMUP + CLAIMS; round++) {
    for (const [index, { projection }] of backlogs.entries()) {
      let start = performance.now();
      const batch = await projection.claimDue({ owner: 'bench', limit: BATCH });
      const claimMs = performance.now() - start;
      if (batch.length !== BATCH) throw new Error(`a claim of ${BATCH} returned ${batch.length}`);
      await projection.release('bench', batch.map(({ mission }) => ({ userId: mission.userId, missionId: mission.id })));
      start = performance.now();
      await projection.nextDueInMs();
      const nextDueMs = performance.now() - start;
      if (round < WARMUP) continue;
      samples[index]!.claims.push(claimMs);
      samples[index]!.nextDue.push(nextDueMs);
    }
  }
  return backlogs.map(({ due }, index) => ({
    due,
    claimMs: median(samples[index]!.claims),
    nextDueMs: median(samples[index]!.nextDue),
    claimed: BATCH,
  }));
}

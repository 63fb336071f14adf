/**
 * `pnpm bench` for @mana-ai/projection (DESIGN §5). Prints, from one run:
 *  - refresh of 1,000 new rows on logs of 10,000 and 1,000,000 rows (ratio, target ≤ 1.5);
 *  - the same refresh with the original's "what changed" sweep (docs/wire-contract.md#the-mana_ai-schema) as baseline (≥ 20×);
 *  - pure LWW merge throughput (≥ 1,000,000 field changes/s);
 *  - peak RSS while bootstrapping the 1,000,000-row log (≤ 256 MB);
 *  - one claim of 32 with 100,000 missions due vs with 1,000 due (ratio ≤ 1.25: claims O(batch)),
 *    and `nextDueInMs()` on both.
 */
import { readFile, readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import postgres, { type Sql } from 'postgres';
import { type ChangeRow, applyChange, createMergeState, mergeChanges, mergeStateFromSnapshot, snapshotRecord } from '../src/lww.js';
import { createProjection } from '../src/projection.js';
import { type ClaimFigures, measureClaims, prepareBacklog } from './claims.js';
import { startBenchCluster } from './cluster.js';

const REPS = 5;
const NEW_ROWS = 1000;

interface LogShape {
  rows: number;
  missions: number;
  agents: number;
  notes: number;
  users: number;
}

const SMALL: LogShape = { rows: 10_000, missions: 1_000, agents: 50, notes: 2_000, users: 200 };
const LARGE: LogShape = { rows: 1_000_000, missions: 50_000, agents: 500, notes: 200_000, users: 5_000 };

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function log(message: string): void {
  process.stdout.write(`${message}\n`);
}

async function migrate(sql: Sql): Promise<void> {
  const directory = fileURLToPath(new URL('../sql/', import.meta.url));
  for (const file of (await readdir(directory)).filter((name) => name.endsWith('.sql')).sort()) {
    await sql.unsafe(await readFile(`${directory}${file}`, 'utf8'));
  }
}

async function createDatabase(adminUrl: string, name: string): Promise<Sql> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.unsafe(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const sql = postgres(url.toString(), { max: 4, onnotice: () => {} });
  await migrate(sql);
  return sql;
}

/** Bulk-loads a log of `shape.rows` rows: mission inserts, agents, notes, then mission updates. */
async function loadLog(sql: Sql, shape: LogShape): Promise<void> {
  const updates = shape.rows - shape.missions - shape.agents - shape.notes;
  const base = '2025-01-01T00:00:00Z';
  await sql`
    INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_meta, client_id, created_at)
    SELECT 'ai', 'aiMissions', 'm-' || g, 'u-' || (g % ${shape.users}), 'insert',
           jsonb_build_object('id', 'm-' || g, 'title', 'Mission ' || g, 'objective', 'Plane meine Woche', 'conceptMarkdown', '',
             'state', 'active', 'nextRunAt', '2099-01-01T00:00:00.000Z', 'agentId', 'a-' || (g % ${shape.agents}),
             'cadence', jsonb_build_object('kind', 'interval', 'everyMinutes', 60), 'inputs', '[]'::jsonb, 'iterations', '[]'::jsonb),
           '{}'::jsonb, 'bench', ${base}::text::timestamptz + g * interval '1 microsecond'
    FROM generate_series(1, ${shape.missions}) AS g`;
  await sql`
    INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_meta, client_id, created_at)
    SELECT 'ai', 'agents', 'a-' || g, 'u-' || (g % ${shape.users}), 'insert',
           jsonb_build_object('id', 'a-' || g, 'name', 'Agent ' || g, 'role', 'helper', 'state', 'active', 'maxConcurrentMissions', 2),
           '{}'::jsonb, 'bench', ${base}::text::timestamptz + interval '1 second' + g * interval '1 microsecond'
    FROM generate_series(1, ${shape.agents}) AS g`;
  await sql`
    INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_meta, client_id, created_at)
    SELECT 'notes', 'notes', 'n-' || g, 'u-' || (g % ${shape.users}), 'insert',
           jsonb_build_object('id', 'n-' || g, 'title', 'enc:1:abc.def', 'content', 'enc:1:ghi.jkl'),
           '{}'::jsonb, 'bench', ${base}::text::timestamptz + interval '2 seconds' + g * interval '3 microseconds'
    FROM generate_series(1, ${shape.notes}) AS g`;
  await sql`
    INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_meta, client_id, created_at)
    SELECT 'ai', 'aiMissions', 'm-' || m, 'u-' || (m % ${shape.users}), 'update',
           jsonb_build_object('title', 'Mission ' || m || ' v' || g, 'objective', 'Ziel ' || g),
           jsonb_build_object('title', to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                              'objective', to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
           'bench', t
    FROM (
      SELECT g, 1 + (g::bigint * 7919) % ${shape.missions} AS m,
             ${base}::text::timestamptz + interval '3 seconds' + g * interval '2 microseconds' AS t
      FROM generate_series(1, ${updates}) AS g
    ) AS u`;
  await sql`ANALYZE sync_changes`;
}

/** Appends `count` mission updates (distinct missions) stamped now. */
async function appendNewRows(sql: Sql, shape: LogShape, count: number, rep: number): Promise<void> {
  await sql`
    INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, field_meta, client_id)
    SELECT 'ai', 'aiMissions', 'm-' || m, 'u-' || (m % ${shape.users}), 'update',
           jsonb_build_object('title', 'fresh ' || ${rep}::int || '/' || m),
           jsonb_build_object('title', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')), 'bench'
    FROM (SELECT DISTINCT 1 + ((g + ${rep * 104_729}::int) * 15_485_863::bigint) % ${shape.missions} AS m
          FROM generate_series(1, ${count}) AS g) AS picked`;
}

/** The original's refresh (docs/wire-contract.md#the-mana_ai-schema), with its cursor kept at full precision to be fair (B5 fixed). */
async function baselineRefresh(sql: Sql): Promise<number> {
  const pairs = await sql<{ user_id: string; mission_id: string; since: string }[]>`
    WITH latest AS (
      SELECT user_id, record_id AS mission_id, MAX(created_at) AS max_ts
      FROM sync_changes WHERE app_id = 'ai' AND table_name = 'aiMissions'
      GROUP BY user_id, record_id)
    SELECT l.user_id, l.mission_id, COALESCE(s.last_applied_at, 'epoch'::timestamptz)::text AS since
    FROM latest l LEFT JOIN bench_baseline.mission_snapshots s ON s.user_id = l.user_id AND s.mission_id = l.mission_id
    WHERE l.max_ts > COALESCE(s.last_applied_at, 'epoch'::timestamptz)`;
  let rowsApplied = 0;
  for (const pair of pairs) {
    const rows = await sql.begin(async (tx) => {
      await tx`SELECT set_config('app.current_user_id', ${pair.user_id}, true)`;
      return tx<{ op: string; data: unknown; field_meta: unknown; stamp: string; position: string }[]>`
        SELECT op, data, field_meta,
               to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS stamp, created_at::text AS position
        FROM sync_changes
        WHERE app_id = 'ai' AND table_name = 'aiMissions' AND user_id = ${pair.user_id} AND record_id = ${pair.mission_id}
          AND created_at > ${pair.since}::text::timestamptz
        ORDER BY created_at ASC`;
    });
    if (rows.length === 0) continue;
    const [existing] = await sql<{ record: Record<string, unknown> }[]>`
      SELECT record FROM bench_baseline.mission_snapshots WHERE user_id = ${pair.user_id} AND mission_id = ${pair.mission_id}`;
    const state = existing ? mergeStateFromSnapshot(pair.mission_id, existing.record) : createMergeState();
    for (const row of rows) {
      applyChange(state, { op: row.op, recordId: pair.mission_id, data: row.data, fieldMeta: row.field_meta, createdAt: row.stamp });
    }
    rowsApplied += rows.length;
    const record = snapshotRecord(state);
    if (record === null) {
      await sql`DELETE FROM bench_baseline.mission_snapshots WHERE user_id = ${pair.user_id} AND mission_id = ${pair.mission_id}`;
      continue;
    }
    await sql`
      INSERT INTO bench_baseline.mission_snapshots (user_id, mission_id, record, last_applied_at, updated_at)
      VALUES (${pair.user_id}, ${pair.mission_id}, ${JSON.stringify(record)}::text::jsonb, ${rows.at(-1)!.position}::text::timestamptz, now())
      ON CONFLICT (user_id, mission_id) DO UPDATE SET record = EXCLUDED.record, last_applied_at = EXCLUDED.last_applied_at, updated_at = now()`;
  }
  return rowsApplied;
}

interface RefreshFigures {
  ours: number;
  baseline: number;
  bootstrapMs: number;
  peakRssMb?: number;
}

async function measureLog(adminUrl: string, name: string, shape: LogShape, sampleRss: boolean): Promise<RefreshFigures> {
  const sql = await createDatabase(adminUrl, name);
  const loadStart = performance.now();
  await loadLog(sql, shape);
  const [count] = await sql<{ n: string }[]>`SELECT count(*)::text AS n FROM sync_changes`;
  log(`[${name}] loaded ${Number(count?.n).toLocaleString('en-US')} log rows in ${((performance.now() - loadStart) / 1000).toFixed(1)} s`);

  const projection = createProjection({ sql });
  let peakRss = process.memoryUsage().rss;
  const sampler = sampleRss
    ? setInterval(() => {
        peakRss = Math.max(peakRss, process.memoryUsage().rss);
      }, 10)
    : undefined;
  const bootstrapStart = performance.now();
  let lastReport = 0;
  projection.events.on('refresh.progress', (event) => {
    if (event.rowsRead - lastReport >= 200_000) {
      lastReport = event.rowsRead;
      log(`[${name}]   bootstrap progress: ${event.rowsRead.toLocaleString('en-US')} rows, rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB`);
    }
  });
  const bootstrap = await projection.refresh();
  const bootstrapMs = performance.now() - bootstrapStart;
  if (sampler) clearInterval(sampler);
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
  log(
    `[${name}] bootstrap: ${bootstrap.rowsRead.toLocaleString('en-US')} feed rows, ${bootstrap.batches} batches, ` +
      `${bootstrap.newSnapshots.toLocaleString('en-US')} snapshots in ${(bootstrapMs / 1000).toFixed(1)} s` +
      (sampleRss ? `, peak RSS ${(peakRss / 2 ** 20).toFixed(0)} MB` : ''),
  );

  await sql`CREATE SCHEMA IF NOT EXISTS bench_baseline`;
  await sql`CREATE TABLE bench_baseline.mission_snapshots (LIKE mana_ai.mission_snapshots INCLUDING ALL)`;
  // Named columns: the typed claim columns are generated from the record.
  await sql`
    INSERT INTO bench_baseline.mission_snapshots (user_id, mission_id, record, last_applied_at, updated_at, next_run_at)
    SELECT user_id, mission_id, record, last_applied_at, updated_at, next_run_at FROM mana_ai.mission_snapshots`;
  await sql`ANALYZE`;
  // Warm both paths once so the timed runs compare steady states.
  await appendNewRows(sql, shape, NEW_ROWS, 0);
  await projection.refresh();
  await baselineRefresh(sql);

  const ours: number[] = [];
  const baseline: number[] = [];
  for (let rep = 1; rep <= REPS; rep++) {
    await appendNewRows(sql, shape, NEW_ROWS, rep);
    let start = performance.now();
    const result = await projection.refresh();
    ours.push(performance.now() - start);
    start = performance.now();
    const baselineRows = await baselineRefresh(sql);
    baseline.push(performance.now() - start);
    if (result.rowsRead !== baselineRows) throw new Error(`rows differ: ${result.rowsRead} vs ${baselineRows}`);
  }
  const [diff] = await sql<{ n: string }[]>`
    SELECT count(*)::text AS n FROM mana_ai.mission_snapshots m
    JOIN bench_baseline.mission_snapshots b USING (user_id, mission_id) WHERE m.record <> b.record`;
  if (diff?.n !== '0') throw new Error(`baseline and incremental snapshots differ in ${diff?.n} missions`);
  const figures: RefreshFigures = { ours: median(ours), baseline: median(baseline), bootstrapMs };
  if (sampleRss) figures.peakRssMb = peakRss / 2 ** 20;
  log(
    `[${name}] refresh of ${NEW_ROWS} new rows (median of ${REPS}): incremental ${figures.ours.toFixed(1)} ms, ` +
      `baseline sweep ${figures.baseline.toFixed(1)} ms (snapshots identical)`,
  );
  await sql.end();
  return figures;
}

/** Claim figures for 1,000 and 100,000 due missions, each in a database of its own. */
async function measureClaimScaling(adminUrl: string): Promise<[ClaimFigures, ClaimFigures]> {
  const backlogs = [];
  const clients: Sql[] = [];
  for (const due of [1_000, 100_000]) {
    const sql = await createDatabase(adminUrl, `bench_claims_${due}`);
    clients.push(sql);
    const start = performance.now();
    backlogs.push(await prepareBacklog(sql, due));
    log(`[claims] ${due.toLocaleString('en-US')} due missions projected in ${((performance.now() - start) / 1000).toFixed(1)} s`);
  }
  const [small, large] = await measureClaims(backlogs);
  await Promise.all(clients.map((sql) => sql.end()));
  return [small!, large!];
}

/** Pure merge throughput: records × rows × fields field changes, best of several runs. */
function measureMerge(): { perSecond: number; fieldChanges: number } {
  const records = 2_000;
  const rowsPerRecord = 100;
  const fields = ['title', 'objective', 'state', 'nextRunAt', 'iterations'];
  const logs: ChangeRow[][] = [];
  for (let r = 0; r < records; r++) {
    const rows: ChangeRow[] = [];
    for (let i = 0; i < rowsPerRecord; i++) {
      const stamp = new Date(Date.UTC(2026, 3, 1) + ((i * 7919 + r) % 100_000) * 1000).toISOString();
      const data: Record<string, unknown> = {};
      const fieldMeta: Record<string, string> = {};
      for (const field of fields) {
        data[field] = `${field}-${i}`;
        fieldMeta[field] = stamp;
      }
      rows.push({ op: i === 0 ? 'insert' : 'update', recordId: `m-${r}`, data, fieldMeta, createdAt: stamp });
    }
    logs.push(rows);
  }
  const fieldChanges = records * rowsPerRecord * fields.length;
  let best = Number.POSITIVE_INFINITY;
  for (let run = 0; run < 7; run++) {
    const start = performance.now();
    let kept = 0;
    for (const rows of logs) if (mergeChanges(rows, 'mission') !== null) kept++;
    const elapsed = performance.now() - start;
    if (kept !== records) throw new Error('merge lost records');
    best = Math.min(best, elapsed);
  }
  return { perSecond: fieldChanges / (best / 1000), fieldChanges };
}

async function main(): Promise<void> {
  const benchStart = performance.now();
  log('@mana-ai/projection bench');
  const cluster = await startBenchCluster();
  try {
    // The 1M bootstrap runs first so its RSS is not inflated by anything measured earlier.
    const large = await measureLog(cluster.adminUrl, 'bench_log_1m', LARGE, true);
    const small = await measureLog(cluster.adminUrl, 'bench_log_10k', SMALL, false);
    const merge = measureMerge();
    const [claimsSmall, claimsLarge] = await measureClaimScaling(cluster.adminUrl);
    const claimRatio = claimsLarge.claimMs / claimsSmall.claimMs;
    const ratio = large.ours / small.ours;
    const speedup = large.baseline / large.ours;
    const pass = (ok: boolean) => (ok ? 'PASS' : 'FAIL');
    log('');
    log('| figure | value | target | |');
    log('|---|---|---|---|');
    log(`| refresh 1,000 new rows, 10,000-row log | ${small.ours.toFixed(1)} ms | | |`);
    log(`| refresh 1,000 new rows, 1,000,000-row log | ${large.ours.toFixed(1)} ms | | |`);
    log(`| ratio 1M / 10k | ${ratio.toFixed(2)}× | ≤ 1.5× | ${pass(ratio <= 1.5)} |`);
    log(`| original sweep, same 1,000 rows on 1M log | ${large.baseline.toFixed(1)} ms | | |`);
    log(`| incremental vs original sweep (1M log) | ${speedup.toFixed(1)}× faster | ≥ 20× | ${pass(speedup >= 20)} |`);
    log(`| original sweep on 10k log (for reference) | ${small.baseline.toFixed(1)} ms | | |`);
    log(
      `| LWW merge throughput | ${(merge.perSecond / 1e6).toFixed(2)} M field changes/s | ≥ 1 M/s | ${pass(merge.perSecond >= 1e6)} |`,
    );
    log(`| peak RSS, 1,000,000-row bootstrap | ${large.peakRssMb!.toFixed(0)} MB | ≤ 256 MB | ${pass(large.peakRssMb! <= 256)} |`);
    log(`| 1,000,000-row bootstrap time | ${(large.bootstrapMs / 1000).toFixed(1)} s | | |`);
    log(`| one claim of 32, 1,000 due (median) | ${claimsSmall.claimMs.toFixed(2)} ms | | |`);
    log(`| one claim of 32, 100,000 due (median) | ${claimsLarge.claimMs.toFixed(2)} ms | | |`);
    log(`| claim ratio 100,000 / 1,000 due | ${claimRatio.toFixed(2)}× | ≤ 1.25× | ${pass(claimRatio <= 1.25)} |`);
    log(`| nextDueInMs(), 1,000 / 100,000 due (median) | ${claimsSmall.nextDueMs.toFixed(2)} / ${claimsLarge.nextDueMs.toFixed(2)} ms | | |`);
    log(`\ntotal bench time ${((performance.now() - benchStart) / 1000).toFixed(0)} s`);
  } finally {
    await cluster.stop();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});

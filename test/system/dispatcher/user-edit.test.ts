import { randomUUID } from 'node:crypto';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from '@mana-ai/planner/testing';
import { type ChangeRow, deriveIterationId, mergeChanges } from '@mana-ai/projection';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type WebappClient, createWebappClient, writeAgent, writeMission } from '../../../apps/runner/src/demo/seed.js';
import {
  type DispatcherRunner,
  type LlmCall,
  databaseClockOffsetMs,
  firstCall,
  missionTitle,
  planReply,
  recordLlmCalls,
  settle,
  startDispatcherRunner,
  tailOf,
  waitFor,
} from '../support/dispatcher-runs.js';
import { type TestDatabase, createTestDatabase, runnerUrl } from '../support/security-database.js';

// The user edits a mission on their device while the runner plans it (the LLM's first answer takes
// 2 s). The runner's write-back must not overwrite what the user wrote: the fields the user edited
// keep the user's values under last-writer-wins, the iteration is added, and a `nextRunAt` the user
// set during the run ("run now") stands — the runner's row leaves it out (DESIGN §3.1, write-back),
// and the run the user asked for happens. A runner that wrote the advanced nextRunAt regardless, or
// stamped its row with a clock ahead of the device, would take the user's edit away.

const LLM_DELAY_MS = 2000;
const CADENCE = { kind: 'interval', everyMinutes: 60 } as const;
const FIELDS = 'dsp-fields-1';
const RERUN = 'dsp-rerun-1';
const OLD_OBJECTIVE = 'Plan the groceries of the week';
const NEW_OBJECTIVE = 'Plan the groceries of the week, vegetarian only';
const NEW_CONCEPT = 'Budget 40 EUR, the market on Saturday.';
const RUNNER_CLIENT_ID = 'mana-ai-runner';

interface LogRow {
  id: string;
  op: string;
  record_id: string;
  client_id: string;
  data: Record<string, unknown>;
  field_meta: Record<string, string>;
  stamp: string;
  created_at_ms: number;
  iteration_id: string | null;
}

interface Seeded {
  id: string;
  nextRunAt: string;
  /** The user's edit written while the runner planned the mission. */
  edit: { rowId: string; fields: Record<string, unknown> };
}

const USER = `u-dsp-edit-${randomUUID()}`;

describe('a user edit written while a mission runs', () => {
  let db: TestDatabase;
  let llm: FakeLlmServer;
  let calls: LlmCall[];
  let webapp: WebappClient;
  let runner: DispatcherRunner | undefined;
  let offsetMs = 0;
  const seeded = new Map<string, Seeded>();

  const rowsOf = (missionId: string): Promise<LogRow[]> =>
    db.sql<LogRow[]>`
      SELECT id::text AS id, op, record_id, client_id, data, field_meta,
             to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS stamp,
             (extract(epoch FROM created_at) * 1000)::float8 AS created_at_ms, actor->>'iterationId' AS iteration_id
      FROM sync_changes WHERE app_id = 'ai' AND table_name = 'aiMissions' AND record_id = ${missionId} AND user_id = ${USER}
      ORDER BY created_at, id`;
  const replay = (rows: readonly LogRow[]): Record<string, unknown> =>
    mergeChanges(
      rows.map((row): ChangeRow => ({ op: row.op, recordId: row.record_id, data: row.data, fieldMeta: row.field_meta, createdAt: row.stamp })),
      'mission',
    )!;
  const runnerRowsOf = async (label: string): Promise<LogRow[]> => (await rowsOf(seeded.get(label)!.id)).filter((row) => row.client_id === RUNNER_CLIENT_ID);
  const diagnose = async (): Promise<string> => {
    const rows = await Promise.all([...seeded.values()].map((mission) => rowsOf(mission.id)));
    return `${JSON.stringify({ rows, calls: calls.map(({ prompt: _prompt, ...call }) => call) }, null, 1)}\n${tailOf(runner)}`;
  };

  beforeAll(async () => {
    [db, llm] = await Promise.all([createTestDatabase(), createFakeLlmServer()]);
    calls = recordLlmCalls(llm, (call, all) => {
      const firstAttempt = call.round === 'first' && all.filter((other) => other.label === call.label && other.round === 'first').length === 1;
      return firstAttempt ? fakeReplies.delayed(LLM_DELAY_MS, planReply(call)) : planReply(call);
    });
    webapp = createWebappClient(db.sql, { userId: USER });
    const agentId = await writeAgent(webapp, { name: 'Einkaufsplaner', maxConcurrentMissions: 5 });
    const nextRunAt = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000).toISOString();
    for (const label of [FIELDS, RERUN]) {
      const id = await writeMission(webapp, { title: missionTitle(label), objective: OLD_OBJECTIVE, cadence: CADENCE, nextRunAt, agentId });
      seeded.set(label, { id, nextRunAt, edit: { rowId: '', fields: {} } });
    }

    runner = await startDispatcherRunner({ id: 'dsp-edit', databaseUrl: await runnerUrl(db), llmUrl: llm.url });
    offsetMs = await databaseClockOffsetMs(db.sql);
    // While the first LLM answer of each mission is pending, the user edits it on their device.
    await waitFor('both missions to be asked about', 15_000, () => (firstCall(calls, FIELDS) && firstCall(calls, RERUN) ? true : undefined), diagnose);
    const edits: Record<string, Record<string, unknown>> = {
      [FIELDS]: { objective: NEW_OBJECTIVE, conceptMarkdown: NEW_CONCEPT },
      [RERUN]: { nextRunAt: new Date().toISOString(), objective: NEW_OBJECTIVE },
    };
    for (const [label, fields] of Object.entries(edits)) {
      const mission = seeded.get(label)!;
      mission.edit = { rowId: await webapp.update('ai', 'aiMissions', mission.id, fields), fields };
    }
    await waitFor(
      'the runner to write both plans',
      20_000,
      async () => ((await runnerRowsOf(FIELDS)).length >= 1 && (await runnerRowsOf(RERUN)).length >= 1 ? true : undefined),
      diagnose,
      100,
    );
    // The run the user asked for follows at once; its absence is asserted below.
    await settle('the plan of the run the user asked for', 10_000, async () => (await runnerRowsOf(RERUN)).length >= 2, diagnose, 100);
  }, 90_000);

  afterAll(async () => {
    await runner?.stop();
    await llm?.close();
    await db?.drop();
  });

  /** The user's edit row and the runner's first row, checking the edit was written while the mission ran. */
  const editDuringRun = async (label: string): Promise<{ rows: LogRow[]; edit: LogRow; written: LogRow }> => {
    const mission = seeded.get(label)!;
    const rows = await rowsOf(mission.id);
    const edit = rows.find((row) => row.id === mission.edit.rowId)!;
    const written = rows.find((row) => row.client_id === RUNNER_CLIENT_ID)!;
    expect(written.iteration_id).toBe(await deriveIterationId(mission.id, mission.nextRunAt));
    // After the runner asked the LLM, before its write-back: the edit raced the run.
    expect(edit.created_at_ms).toBeGreaterThan(firstCall(calls, label)!.atMs + offsetMs);
    expect(edit.created_at_ms).toBeLessThan(written.created_at_ms);
    return { rows, edit, written };
  };

  it('keeps the fields the user edited during the run and adds the iteration', async () => {
    const { rows, written } = await editDuringRun(FIELDS);
    // The runner's row carries only what it owns: the iteration and the advanced nextRunAt.
    expect(Object.keys(written.data).sort()).toEqual(['iterations', 'nextRunAt']);
    const merged = replay(rows);
    expect(merged).toMatchObject({ objective: NEW_OBJECTIVE, conceptMarkdown: NEW_CONCEPT, nextRunAt: written.data.nextRunAt });
    expect((merged.iterations as { id: string }[]).map((iteration) => iteration.id)).toEqual([written.iteration_id]);
    expect(await runnerRowsOf(FIELDS)).toHaveLength(1);
    // The snapshot the runner plans from agrees with the log.
    const [snapshot] = await db.sql<{ record: Record<string, unknown> }[]>`
      SELECT record FROM mana_ai.mission_snapshots WHERE user_id = ${USER} AND mission_id = ${seeded.get(FIELDS)!.id}`;
    expect(snapshot!.record).toMatchObject({ objective: NEW_OBJECTIVE, conceptMarkdown: NEW_CONCEPT, nextRunAt: written.data.nextRunAt });
  });

  it('leaves a nextRunAt the user set during the run to the user and plans the run they asked for', async () => {
    const { rows, written } = await editDuringRun(RERUN);
    const mission = seeded.get(RERUN)!;
    const userNextRunAt = String(mission.edit.fields.nextRunAt);
    // The user's value stands: the runner's row does not contain nextRunAt at all.
    expect(Object.keys(written.data)).toEqual(['iterations']);
    expect(Object.keys(written.field_meta)).toEqual(['iterations']);
    const upToWrite = rows.slice(0, rows.indexOf(written) + 1);
    expect(replay(upToWrite)).toMatchObject({ objective: NEW_OBJECTIVE, nextRunAt: userNextRunAt });

    // The "run now" was honoured: a second run for the user's slot, planned with the user's objective.
    const runnerRows = rows.filter((row) => row.client_id === RUNNER_CLIENT_ID);
    expect(runnerRows).toHaveLength(2);
    expect(runnerRows[1]!.iteration_id).toBe(await deriveIterationId(mission.id, userNextRunAt));
    const firstAttempts = calls.filter((call) => call.label === RERUN && call.round === 'first');
    expect(firstAttempts).toHaveLength(2);
    expect(firstAttempts[1]!.prompt).toContain(NEW_OBJECTIVE);
    const merged = replay(rows);
    expect(merged).toMatchObject({ objective: NEW_OBJECTIVE, nextRunAt: runnerRows[1]!.data.nextRunAt });
    expect((merged.iterations as { id: string }[]).map((iteration) => iteration.id)).toEqual(runnerRows.map((row) => row.iteration_id));
    expect(Date.parse(String(merged.nextRunAt))).toBeGreaterThan(Date.parse(userNextRunAt));
  });
});

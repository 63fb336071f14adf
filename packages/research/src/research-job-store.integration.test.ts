import { type TestDatabase, createTestDatabase, runnerUrl } from '@mana-ai/test-postgres';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { migrations } from './migrations.js';
import { createResearchJobStore } from './research-job-store.js';
import type { CompletedResearchState, RunningResearchState } from './research-machine.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.drop());
beforeEach(async () => {
  await db.sql`DELETE FROM mana_ai.mission_research_jobs`;
});

const T0 = Date.parse('2026-04-21T06:00:00.000Z');

const running: RunningResearchState = {
  phase: 'running',
  taskId: 'task-1',
  providerId: 'gemini-deep-research-max',
  submittedAt: T0,
  lastPolledAt: null,
  remoteStatus: 'queued',
  failedPolls: 0,
};

const completed: CompletedResearchState = {
  phase: 'completed',
  taskId: 'task-1',
  providerId: 'gemini-deep-research-max',
  submittedAt: T0,
  lastPolledAt: T0 + 60_000,
  completedAt: T0 + 60_000,
  answer: { answer: 'Antwort', citations: [{ url: 'https://a.example', title: 'A', snippet: 's' }], query: 'q' },
};

describe('createResearchJobStore', () => {
  it('loads idle when the mission has no job row', async () => {
    const store = createResearchJobStore({ sql: db.sql });
    expect(await store.load('u-1', 'm-1')).toEqual({ phase: 'idle' });
  });

  it('writes a running job into the upstream columns and reads it back', async () => {
    const store = createResearchJobStore({ sql: db.sql });
    await store.save('u-1', 'm-1', running);
    const rows = await db.sql`
      SELECT user_id, mission_id, task_id, provider_id, submitted_at, last_polled_at, state, remote_status,
             failed_polls, result, completed_at
      FROM mana_ai.mission_research_jobs`;
    expect(rows).toEqual([
      {
        user_id: 'u-1',
        mission_id: 'm-1',
        task_id: 'task-1',
        provider_id: 'gemini-deep-research-max',
        submitted_at: new Date(T0),
        last_polled_at: null,
        state: 'running',
        remote_status: 'queued',
        failed_polls: 0,
        result: null,
        completed_at: null,
      },
    ]);
    expect(await store.load('u-1', 'm-1')).toEqual(running);
    expect(await store.load('u-2', 'm-1')).toEqual({ phase: 'idle' });
  });

  it('loads a job as the runner in one statement, under its user’s row-level security', async () => {
    await createResearchJobStore({ sql: db.sql }).save('u-1', 'm-1', running);
    const statements: string[] = [];
    const runner = db.connect({ url: await runnerUrl(db), max: 1, debug: (_connection, query) => statements.push(query) });
    await runner`SELECT 1`;
    statements.length = 0;
    const store = createResearchJobStore({ sql: runner });
    expect(await store.load('u-1', 'm-1')).toEqual(running);
    expect(await store.load('u-2', 'm-1')).toEqual({ phase: 'idle' });
    expect(statements.map((query) => /mana_ai\.(\w+)\(/.exec(query)?.[1] ?? query.trim())).toEqual(['research_job_of', 'research_job_of']);
    // Outside the function the runner sees no job row: the user scope ended with its statement.
    expect(await runner`SELECT 1 FROM mana_ai.mission_research_jobs`).toHaveLength(0);
  });

  it('lists the keys of the missions with a job across users as the runner, and nothing of the jobs', async () => {
    const owner = createResearchJobStore({ sql: db.sql });
    await owner.save('u-1', 'm-1', running);
    await owner.save('u-2', 'm-2', completed);
    const runner = db.connect({ url: await runnerUrl(db), max: 1 });
    const store = createResearchJobStore({ sql: runner });
    expect(await store.jobKeys(10)).toEqual({
      keys: [
        { userId: 'u-1', missionId: 'm-1' },
        { userId: 'u-2', missionId: 'm-2' },
      ],
      more: false,
    });
    // Keys only: one row of two key arrays and a flag, never a task id, state or answer.
    const rows = await runner`SELECT * FROM mana_ai.research_job_keys(10)`;
    expect(rows).toEqual([{ user_ids: ['u-1', 'u-2'], mission_ids: ['m-1', 'm-2'], more: false }]);
    // The job rows themselves stay behind each user's row-level security.
    expect(await runner`SELECT task_id FROM mana_ai.mission_research_jobs`).toHaveLength(0);
    expect(await runner.begin(async (tx) => {
      await tx`SELECT set_config('app.current_user_id', 'u-1', true)`;
      return tx<{ task_id: string }[]>`SELECT task_id FROM mana_ai.mission_research_jobs WHERE user_id = 'u-2'`;
    })).toHaveLength(0);
    expect(await store.load('u-1', 'm-2')).toEqual({ phase: 'idle' });
    // The definer role the function runs as may read the key columns and nothing else of the table.
    await expect(
      db.sql.begin(async (tx) => {
        await tx`SET LOCAL ROLE mana_ai_feed`;
        return tx`SELECT result FROM mana_ai.mission_research_jobs`;
      }),
    ).rejects.toThrow(/permission denied/);
    const [grant] = await db.sql<{ runnerOnly: boolean }[]>`
      SELECT has_function_privilege('mana_ai_runner', 'mana_ai.research_job_keys(integer)', 'EXECUTE')
        AND NOT has_function_privilege('public', 'mana_ai.research_job_keys(integer)', 'EXECUTE') AS "runnerOnly"`;
    expect(grant?.runnerOnly).toBe(true);
  });

  it('says when more missions have a job than the keys it was asked for', async () => {
    const store = createResearchJobStore({ sql: db.sql });
    expect(await store.jobKeys(5)).toEqual({ keys: [], more: false });
    await store.save('u-1', 'm-1', running);
    await store.save('u-1', 'm-2', running);
    await store.save('u-2', 'm-1', running);
    expect(await store.jobKeys(2)).toEqual({
      keys: [
        { userId: 'u-1', missionId: 'm-1' },
        { userId: 'u-1', missionId: 'm-2' },
      ],
      more: true,
    });
    expect(await store.jobKeys(3)).toMatchObject({ more: false });
    expect((await store.jobKeys(3)).keys).toHaveLength(3);
    expect(await store.jobKeys(0)).toEqual({ keys: [], more: true });
  });

  it('replaces the row of the same mission when saved again', async () => {
    const store = createResearchJobStore({ sql: db.sql });
    await store.save('u-1', 'm-1', running);
    const polled: RunningResearchState = { ...running, lastPolledAt: T0 + 30_000, remoteStatus: 'running', failedPolls: 2 };
    await store.save('u-1', 'm-1', polled);
    expect(await store.load('u-1', 'm-1')).toEqual(polled);
    await store.save('u-1', 'm-1', completed);
    expect(await store.load('u-1', 'm-1')).toEqual(completed);
    const rows = await db.sql`SELECT state, result, completed_at FROM mana_ai.mission_research_jobs`;
    expect(rows).toEqual([{ state: 'completed', result: completed.answer, completed_at: new Date(T0 + 60_000) }]);
  });

  it('deletes only the matching task when a task id is given', async () => {
    const store = createResearchJobStore({ sql: db.sql });
    await store.save('u-1', 'm-1', running);
    await store.save('u-1', 'm-2', { ...running, taskId: 'task-2' });
    expect(await store.delete('u-1', 'm-1', 'task-old')).toBe(false);
    expect(await store.delete('u-1', 'm-1', 'task-1')).toBe(true);
    expect(await store.delete('u-1', 'm-2')).toBe(true);
    expect(await store.delete('u-1', 'm-2')).toBe(false);
    const [{ count }] = (await db.sql`SELECT count(*)::int AS count FROM mana_ai.mission_research_jobs`) as unknown as [
      { count: number },
    ];
    expect(count).toBe(0);
  });

  it('reads a row written by the original service as a running job to poll', async () => {
    await db.sql`
      INSERT INTO mana_ai.mission_research_jobs (user_id, mission_id, task_id, provider_id, submitted_at)
      VALUES ('u-1', 'm-1', 'legacy-task', 'gemini-deep-research-max', ${new Date(T0)})`;
    const store = createResearchJobStore({ sql: db.sql });
    expect(await store.load('u-1', 'm-1')).toEqual({
      phase: 'running',
      taskId: 'legacy-task',
      providerId: 'gemini-deep-research-max',
      submittedAt: T0,
      lastPolledAt: null,
      remoteStatus: 'queued',
      failedPolls: 0,
    });
  });

  it('polls again when a completed row has no usable answer', async () => {
    await db.sql`
      INSERT INTO mana_ai.mission_research_jobs (user_id, mission_id, task_id, provider_id, submitted_at, state, result)
      VALUES ('u-1', 'm-1', 't', 'p', ${new Date(T0)}, 'completed', ${JSON.stringify({ nope: true })}::jsonb)`;
    const store = createResearchJobStore({ sql: db.sql });
    expect(await store.load('u-1', 'm-1')).toMatchObject({ phase: 'running', taskId: 't' });
  });

  it('rejects unknown states at the database', async () => {
    await expect(
      db.sql`
        INSERT INTO mana_ai.mission_research_jobs (user_id, mission_id, task_id, provider_id, state)
        VALUES ('u-1', 'm-9', 't', 'p', 'exploded')`,
    ).rejects.toThrow(/mission_research_jobs_state_check/);
  });
});

describe('migrations', () => {
  it('can be applied again when the schema already exists', async () => {
    for (const migration of migrations) await db.sql.unsafe(migration.sql);
    for (const migration of migrations) await db.sql.unsafe(migration.sql);
    const columns = await db.sql<{ column_name: string }[]>`
      SELECT column_name FROM information_schema.columns
      WHERE table_schema = 'mana_ai' AND table_name = 'mission_research_jobs' ORDER BY ordinal_position`;
    expect(columns.map((column) => column.column_name)).toEqual([
      'user_id',
      'mission_id',
      'task_id',
      'provider_id',
      'submitted_at',
      'last_polled_at',
      'state',
      'remote_status',
      'failed_polls',
      'result',
      'completed_at',
      'updated_at',
    ]);
  });

  it('upgrades a table created by the original service when 0002 runs on it', async () => {
    const upgrade = migrations.find((migration) => migration.id === 'research/0002_research_job_state');
    expect(upgrade).toBeDefined();
    await db.sql.unsafe('DROP TABLE mana_ai.mission_research_jobs');
    await db.sql.unsafe(migrations[0]!.sql);
    await db.sql`
      INSERT INTO mana_ai.mission_research_jobs (user_id, mission_id, task_id, provider_id)
      VALUES ('u-1', 'm-1', 'old', 'p')`;
    await db.sql.unsafe(upgrade!.sql);
    const rows = await db.sql`SELECT task_id, state, failed_polls FROM mana_ai.mission_research_jobs`;
    expect(rows).toEqual([{ task_id: 'old', state: 'running', failed_polls: 0 }]);
  });
});

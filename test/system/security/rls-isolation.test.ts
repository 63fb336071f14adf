import { type AiActor, type MissionIteration, buildServerIteration, makeAgentActor } from '@mana-ai/core';
import { type Projection, createProjection, deriveIterationId } from '@mana-ai/projection';
import { type ResearchJobStore, createResearchJobStore } from '@mana-ai/research';
import { type DecryptAudit, createDecryptAudit } from '@mana-ai/resolvers';
import fc from 'fast-check';
import type { Sql } from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RUNNER_PASSWORD,
  type TestDatabase,
  agentRecord,
  connectAsRunner,
  createTestDatabase,
  insertLogRows,
  missionRecord,
} from '../support/security-database.js';

const NOW = '2026-05-01T00:00:00.000Z';

/** The iteration and actor core builds for a plan of (mission, due slot), as the dispatcher would. */
async function serverIteration(missionId: string, dueSlot: string): Promise<{ iteration: MissionIteration; actor: AiActor }> {
  const iterationId = await deriveIterationId(missionId, dueSlot);
  const iteration = buildServerIteration({
    iterationId,
    calls: [{ toolName: 'create_task', params: { title: 'x' } }],
    summary: 'plan',
    startedAt: NOW,
    finishedAt: NOW,
  });
  return { iteration, actor: makeAgentActor({ agentId: 'a-1', displayName: 'Mana', missionId, iterationId, rationale: 'objective' }) };
}
// Both users own records with the same ids, so a query that forgets the user would be caught.
const USERS = ['u-alice', 'u-bob'] as const;
type User = (typeof USERS)[number];
const other = (user: User): User => (user === 'u-alice' ? 'u-bob' : 'u-alice');

let db: TestDatabase;
let runner: Sql;
let projection: Projection;
let audit: DecryptAudit;
let jobs: ResearchJobStore;

beforeAll(async () => {
  db = await createTestDatabase();
  runner = await connectAsRunner(db);
  projection = createProjection({ sql: runner });
  audit = createDecryptAudit({ sql: runner });
  jobs = createResearchJobStore({ sql: runner });
  for (const user of USERS) {
    await insertLogRows(db.sql, [
      { userId: user, recordId: 'm-shared', dataJson: JSON.stringify(missionRecord('m-shared', { title: `title of ${user}`, agentId: 'a-shared' })) },
      { userId: user, recordId: `m-only-${user}`, dataJson: JSON.stringify(missionRecord(`m-only-${user}`)) },
      { userId: user, recordId: 'a-shared', table: 'agents', dataJson: JSON.stringify(agentRecord('a-shared', { name: `agent of ${user}` })) },
      { userId: user, recordId: `a-only-${user}`, table: 'agents', dataJson: JSON.stringify(agentRecord(`a-only-${user}`)) },
      { userId: user, recordId: 'n-shared', appId: 'notes', table: 'notes', dataJson: JSON.stringify({ title: `note of ${user}` }) },
      { userId: user, recordId: `n-only-${user}`, appId: 'notes', table: 'notes', dataJson: JSON.stringify({ title: `private note of ${user}` }) },
    ]);
    await db.sql`
      INSERT INTO mana_ai.decrypt_audit (user_id, mission_id, table_name, record_id, status)
      VALUES (${user}, 'm-shared', 'notes', ${`n-only-${user}`}, 'ok')`;
    await db.sql`
      INSERT INTO mana_ai.token_usage (user_id, agent_id, mission_id, tokens_used, ts)
      VALUES (${user}, 'a-shared', 'm-shared', ${user === 'u-alice' ? 100 : 7000}, now() - interval '1 hour')`;
  }
  await projection.refresh();
});
afterAll(() => db.drop());

describe('the runner role', () => {
  it('has neither superuser nor BYPASSRLS and no UPDATE, DELETE or TRUNCATE on sync_changes', async () => {
    const [role] = await runner<{ rolsuper: boolean; rolbypassrls: boolean }[]>`
      SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`;
    expect(role).toEqual({ rolsuper: false, rolbypassrls: false });
    for (const statement of ["UPDATE sync_changes SET data = '{}'", 'DELETE FROM sync_changes', 'TRUNCATE sync_changes']) {
      await expect(runner.unsafe(statement)).rejects.toThrow(/permission denied/);
    }
    await expect(runner`SELECT * FROM mana_ai.change_feed_horizon()`).rejects.toThrow(/permission denied/);
  });

  it('sees no sync_changes or decrypt_audit rows when no user is set', async () => {
    expect(await runner`SELECT 1 FROM sync_changes`).toHaveLength(0);
    expect(await runner`SELECT 1 FROM mana_ai.decrypt_audit`).toHaveLength(0);
    // An empty setting (e.g. left by a pooled connection) is not a wildcard either.
    const empty = await runner.begin(async (tx) => {
      await tx`SELECT set_config('app.current_user_id', '', true)`;
      return [await tx`SELECT 1 FROM sync_changes`, await tx`SELECT 1 FROM mana_ai.decrypt_audit`];
    });
    expect(empty.map((rows) => rows.length)).toEqual([0, 0]);
  });

  it('does not keep the user setting after the transaction of withUser', async () => {
    await projection.withUser('u-alice', async (tx) => tx`SELECT 1`);
    // A single-connection client makes sure the next query reuses the very same session.
    const single = db.connect({ url: db.urlFor('mana_ai_runner', RUNNER_PASSWORD), max: 1 });
    const scoped = createProjection({ sql: single });
    expect(await scoped.withUser('u-alice', (tx) => tx`SELECT 1 FROM sync_changes`)).not.toHaveLength(0);
    expect(await single`SELECT 1 FROM sync_changes`).toHaveLength(0);
    expect((await single`SELECT current_setting('app.current_user_id', true) AS id`)[0]?.id ?? '').toBe('');
  });
});

describe.each(USERS)('per-user APIs as %s', (user) => {
  it('withUser reads only the own rows of sync_changes and decrypt_audit', async () => {
    const [changes, audits] = await projection.withUser(user, async (tx) => [
      await tx<{ user_id: string }[]>`SELECT DISTINCT user_id FROM sync_changes`,
      await tx<{ user_id: string }[]>`SELECT DISTINCT user_id FROM mana_ai.decrypt_audit`,
    ]);
    expect(changes.map((row) => row.user_id)).toEqual([user]);
    expect(audits.map((row) => row.user_id)).toEqual([user]);
    const probe = await projection.withUser(user, (tx) => tx`SELECT 1 FROM sync_changes WHERE user_id = ${other(user)}`);
    expect(probe).toHaveLength(0);
  });

  it('withUser cannot write or change rows of the other user', async () => {
    await expect(
      projection.withUser(user, (tx) => tx`
        INSERT INTO sync_changes (app_id, table_name, record_id, user_id, op, data, client_id)
        VALUES ('ai', 'aiMissions', 'm-shared', ${other(user)}, 'update', '{"title": "hijacked"}', 'mana-ai-runner')`),
    ).rejects.toThrow(/row-level security/);
    await expect(
      projection.withUser(user, (tx) => tx`
        INSERT INTO mana_ai.decrypt_audit (user_id, mission_id, table_name, record_id, status)
        VALUES (${other(user)}, 'm-shared', 'notes', 'forged', 'ok')`),
    ).rejects.toThrow(/row-level security/);
    const changed = await projection.withUser(user, (tx) => tx`
      UPDATE mana_ai.decrypt_audit SET reason = 'tampered' WHERE user_id = ${other(user)}`);
    expect(changed.count).toBe(0);
  });

  it('replayRecord returns the own record and null for the other user’s', async () => {
    expect(await projection.replayRecord(user, 'notes', 'notes', 'n-shared')).toEqual({ id: 'n-shared', title: `note of ${user}` });
    expect(await projection.replayRecord(user, 'notes', 'notes', `n-only-${other(user)}`)).toBeNull();
    expect(await projection.replayRecord(user, 'ai', 'aiMissions', `m-only-${other(user)}`)).toBeNull();
  });

  it('loadAgents and loadAgent return only the own agents', async () => {
    const agents = await projection.loadAgents(user);
    expect(agents.map((agent) => [agent.id, agent.userId, agent.name])).toEqual([
      [`a-only-${user}`, user, `Agent a-only-${user}`],
      ['a-shared', user, `agent of ${user}`],
    ]);
    expect((await projection.loadAgent(user, 'a-shared'))?.name).toBe(`agent of ${user}`);
    expect(await projection.loadAgent(user, `a-only-${other(user)}`)).toBeNull();
  });

  it('listUserMissions returns only the own missions', async () => {
    const missions = await projection.listUserMissions(user);
    expect(missions.map((overview) => [overview.mission.id, overview.mission.userId])).toEqual([
      [`m-only-${user}`, user],
      ['m-shared', user],
    ]);
    expect(missions.find((overview) => overview.mission.id === 'm-shared')?.mission.title).toBe(`title of ${user}`);
  });

  it('tokenUsageLast24h sums only the own spend and recordTokenUsage writes only for the given user', async () => {
    const before = await projection.tokenUsageLast24h(user, 'a-shared');
    expect(before).toBe(user === 'u-alice' ? 100 : 7000);
    const otherBefore = await projection.tokenUsageLast24h(other(user), 'a-shared');
    await projection.recordTokenUsage({ userId: user, agentId: 'a-shared', missionId: 'm-shared', tokens: 5 });
    expect(await projection.tokenUsageLast24h(user, 'a-shared')).toBe(before + 5);
    expect(await projection.tokenUsageLast24h(other(user), 'a-shared')).toBe(otherBefore);
  });

  it('decrypt audit reads return only the own rows and writes land under the given user', async () => {
    const own = await audit.read(user, { limit: 1000 });
    expect(own.map((row) => row.recordId)).toEqual(expect.arrayContaining([`n-only-${user}`]));
    expect(own.some((row) => row.recordId.endsWith(other(user)))).toBe(false);
    await audit.write({ userId: user, missionId: 'm-shared', tableName: 'notes', recordId: `written-by-${user}`, status: 'ok' });
    const [written] = await db.sql<{ user_id: string }[]>`SELECT user_id FROM mana_ai.decrypt_audit WHERE record_id = ${`written-by-${user}`}`;
    expect(written?.user_id).toBe(user);
    expect((await audit.read(other(user), { limit: 1000 })).some((row) => row.recordId === `written-by-${user}`)).toBe(false);
  });

  it('the research job store never loads, replaces or deletes the other user’s job of the same mission', async () => {
    const job = { phase: 'running' as const, taskId: `task-${user}`, providerId: 'p', submittedAt: Date.parse(NOW), lastPolledAt: null, remoteStatus: 'queued' as const, failedPolls: 0 };
    await jobs.save(user, 'm-shared', job);
    const otherState = await jobs.load(other(user), 'm-shared');
    if (otherState.phase !== 'idle') expect(otherState.taskId).toBe(`task-${other(user)}`);
    expect(await jobs.delete(user, 'm-shared', `task-${other(user)}`)).toBe(false);
    expect(await jobs.delete(user, `m-only-${other(user)}`)).toBe(false);
    expect(await jobs.load(user, 'm-shared')).toMatchObject({ taskId: `task-${user}` });
  });

  it('writeIteration writes only the own mission and refuses the other user’s', async () => {
    const otherBefore = await db.sql<{ record: unknown }[]>`
      SELECT record FROM mana_ai.mission_snapshots WHERE user_id = ${other(user)} AND mission_id = 'm-shared'`;
    const dueSlot = '2026-04-21T06:00:00.000Z';
    const written = await serverIteration('m-shared', dueSlot);
    const result = await projection.writeIteration({ userId: user, missionId: 'm-shared', dueSlot, ...written });
    expect(result.duplicate).toBe(false);
    const rows = await db.sql<{ user_id: string }[]>`
      SELECT user_id FROM sync_changes WHERE client_id = 'mana-ai-runner' AND actor->>'iterationId' = ${result.iterationId}`;
    expect(rows.map((row) => row.user_id)).toContain(user);
    const otherAfter = await db.sql<{ record: unknown }[]>`
      SELECT record FROM mana_ai.mission_snapshots WHERE user_id = ${other(user)} AND mission_id = 'm-shared'`;
    expect(otherAfter).toEqual(otherBefore);
    await expect(
      projection.writeIteration({ userId: user, missionId: `m-only-${other(user)}`, dueSlot, ...(await serverIteration(`m-only-${other(user)}`, dueSlot)) }),
    ).rejects.toMatchObject({ code: 'PROJECTION_MISSION_NOT_FOUND' });
    const [leaked] = await db.sql<{ count: string }[]>`
      SELECT count(*)::text AS count FROM sync_changes WHERE record_id = ${`m-only-${other(user)}`} AND client_id = 'mana-ai-runner'`;
    expect(leaked?.count).toBe('0');
  });
});

describe('arbitrary user ids', () => {
  it('see nothing of u-alice or u-bob when the id differs from theirs in any way', async () => {
    const lookalike = fc.oneof(
      fc.constantFrom("u-alice' OR '1'='1", 'u-alice,u-bob', '%', '*', 'U-ALICE', 'u-alice ', ' u-alice', 'u-alice\t', 'u-ali', 'u-alicé', 'u-bob;--'),
      fc.string({ minLength: 1, maxLength: 20, unit: 'binary' }),
    );
    await fc.assert(
      fc.asyncProperty(
        lookalike.filter((id) => !id.includes('\u0000') && !(USERS as readonly string[]).includes(id)),
        async (id) => {
          expect(await projection.withUser(id, (tx) => tx`SELECT 1 FROM sync_changes`)).toHaveLength(0);
          expect(await projection.replayRecord(id, 'notes', 'notes', 'n-shared')).toBeNull();
          expect(await projection.loadAgents(id)).toEqual([]);
          expect(await projection.listUserMissions(id)).toEqual([]);
          expect(await audit.read(id)).toEqual([]);
        },
      ),
      { seed: 3, numRuns: 60 },
    );
  });

  it('refuses an empty user id before touching the database', async () => {
    await expect(projection.withUser('', async () => 1)).rejects.toMatchObject({ code: 'PROJECTION_EMPTY_USER_ID' });
    await expect(projection.replayRecord('', 'notes', 'notes', 'n-shared')).rejects.toMatchObject({ code: 'PROJECTION_EMPTY_USER_ID' });
    await expect(projection.loadAgents('')).rejects.toMatchObject({ code: 'PROJECTION_EMPTY_USER_ID' });
    await expect(audit.read('')).rejects.toMatchObject({ code: 'RESOLVERS_INVALID_ARGUMENT' });
  });
});

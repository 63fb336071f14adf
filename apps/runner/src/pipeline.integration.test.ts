import { type MissionCadence, nextRunAfter } from '@mana-ai/core';
import { fakeReplies } from '@mana-ai/planner/testing';
import { openTransaction } from '@mana-ai/test-postgres';
import type { FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { useInProcessApps } from '../test/in-process-app.js';

const SERVICE_KEY = 'pipeline-test-key';
const headers = { 'x-service-key': SERVICE_KEY };

const suite = useInProcessApps({ serviceKey: SERVICE_KEY, instanceId: 'pipeline-test' });
const { app, insertMission, tick } = suite;

async function metric(instance: FastifyInstance, line: string): Promise<number | undefined> {
  const text = (await instance.inject({ method: 'GET', url: '/metrics' })).body;
  const match = text.split('\n').find((entry) => entry.startsWith(line));
  return match === undefined ? undefined : Number(match.slice(match.lastIndexOf(' ') + 1));
}

describe('the wired tick (in-process app, real Postgres, fake LLM)', () => {
  it('plans, fails and skips missions independently when one LLM answer is an error and one mission is ciphertext', async () => {
    await insertMission('u-1', 'good');
    await insertMission('u-1', 'broken');
    await insertMission('u-1', 'sealed', { title: 'enc:1:AAAA.BBBB' });
    suite.llm.script(
      { when: { lastUserMessage: 'Mission good', hasToolResult: false }, reply: fakeReplies.toolCalls([{ name: 'create_task', arguments: { title: 'Einkaufen' } }]) },
      { when: { lastUserMessage: 'Mission good', hasToolResult: true }, reply: fakeReplies.text('Ich habe einen Task angelegt.') },
      { when: { lastUserMessage: 'Mission broken' }, reply: fakeReplies.error(500) },
    );
    const instance = await app();
    const stats = await tick(instance);
    expect(stats).toMatchObject({
      dueMissionCount: 3,
      plansProduced: 1,
      plansWrittenBack: 1,
      parseFailures: 1,
      errors: [],
      skipped: { 'ciphertext-mission': 1 },
    });
    // Ciphertext never reaches the LLM: only the good and the broken mission were sent.
    expect(suite.llm.requests.some((request) => request.rawBody.includes('enc:1:'))).toBe(false);

    const listed = await instance.inject({ method: 'GET', url: '/internal/missions/u-1', headers });
    expect(listed.statusCode).toBe(200);
    const missions = new Map<string, { nextRunAt: string; lease: unknown; iterationCount: number; encrypted: boolean }>(
      listed.json().missions.map((mission: { id: string }) => [mission.id, mission]),
    );
    // The interval cadence advances from the database's now, not from the instance's (manual) clock.
    const [row] = await suite.db.sql<{ now: Date }[]>`SELECT now()`;
    const now = row!.now;
    expect(missions.get('good')).toMatchObject({ lease: null, iterationCount: 1 });
    expect(Math.abs(Date.parse(missions.get('good')!.nextRunAt) - (now.getTime() + 3_600_000))).toBeLessThan(60_000);
    expect(missions.get('broken')).toMatchObject({ nextRunAt: '2026-04-21T06:00:00.000Z', lease: null, iterationCount: 0 });
    expect(missions.get('sealed')).toMatchObject({ lease: null, encrypted: true, iterationCount: 0 });
    // The operator view carries no user text.
    expect(listed.body).not.toContain('Mission good');
    expect(listed.body).not.toContain('Objective of');

    expect(await metric(instance, 'mana_ai_plans_written_back_total{service="mana-ai"}')).toBe(1);
    expect(await metric(instance, 'mana_ai_parse_failures_total{service="mana-ai"}')).toBe(1);
    expect(await metric(instance, 'mana_ai_missions_skipped_total{reason="ciphertext-mission",service="mana-ai"}')).toBe(1);
    expect(await metric(instance, 'mana_ai_provider_errors_total{provider="mana",kind="server",service="mana-ai"}')).toBe(1);
    expect(await metric(instance, 'mana_ai_planner_request_duration_seconds_count{service="mana-ai"}')).toBe(3);
    expect(await metric(instance, 'mana_ai_tool_calls_total{tool="create_task",policy="propose",outcome="deferred",service="mana-ai"}')).toBe(1);
    expect(await metric(instance, 'mana_ai_expired_leases{service="mana-ai"}')).toBe(0);

    // The failed mission stays due and is retried by the next tick; the planned one is not due.
    suite.llm.reset();
    suite.llm.script({ when: { lastUserMessage: 'Mission broken' }, reply: fakeReplies.text('Nichts zu tun.') });
    const second = await tick(instance);
    expect(second).toMatchObject({ dueMissionCount: 2, plansProduced: 1, plansWrittenBack: 1, parseFailures: 0 });
    expect(suite.llm.requests.every((request) => request.rawBody.includes('Mission broken'))).toBe(true);
  });

  it('plans a cron mission that has no nextRunAt at its first slot and writes the next slot in the mission zone', async () => {
    const cron: MissionCadence = { kind: 'cron', expression: '*/10 * * * *' };
    await insertMission('u-1', 'cron', { cadence: cron, nextRunAt: undefined, timezone: 'America/New_York' });
    // The mission was created 25 minutes ago (database time): its first slot has passed.
    await suite.db.sql`UPDATE sync_changes SET created_at = created_at - interval '25 minutes'`;
    suite.llm.script({ when: { lastUserMessage: 'Mission cron' }, reply: fakeReplies.text('Erledigt.') });
    const instance = await app();
    expect(await tick(instance)).toMatchObject({ dueMissionCount: 1, plansProduced: 1, plansWrittenBack: 1, errors: [] });
    const [row] = await suite.db.sql<{ next: string; stamp: string }[]>`
      SELECT data->>'nextRunAt' AS next, field_meta->>'nextRunAt' AS stamp FROM sync_changes WHERE client_id = 'mana-ai-runner'`;
    expect(row?.next).toBe(nextRunAfter(cron, Date.parse(row!.stamp), { timeZone: 'America/New_York' })?.toISOString());
    const listed = (await instance.inject({ method: 'GET', url: '/internal/missions/u-1', headers })).json();
    expect(listed.missions).toMatchObject([{ id: 'cron', nextRunAt: row?.next, lease: null, iterationCount: 1 }]);
  });

  it('keeps serving and reports a failed plan with a clear reason when the LLM is unreachable', async () => {
    await insertMission('u-2', 'lonely');
    const instance = await app({ llmUrl: 'http://127.0.0.1:9' });
    const stats = await tick(instance);
    expect(stats).toMatchObject({ dueMissionCount: 1, plansProduced: 0, plansWrittenBack: 0, parseFailures: 1, errors: [] });
    expect(await metric(instance, 'mana_ai_provider_errors_total{provider="mana",kind="unreachable",service="mana-ai"}')).toBe(1);
    expect((await instance.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
    const [lease] = await suite.db.sql`SELECT lease_owner FROM mana_ai.mission_snapshots WHERE mission_id = 'lonely'`;
    expect(lease?.lease_owner).toBeNull();
  });

  it('aborts the LLM call and hands the lease back when shutdown abandons a tick', async () => {
    await insertMission('u-4', 'slow');
    suite.llm.script({ reply: { kind: 'hang' } });
    const instance = await app({ shutdownTimeoutMs: 200, llmTimeoutMs: 60_000 });
    const tickDone = instance.dispatcher.dispatcher.runPass();
    await suite.llm.waitForRequests(1);
    const closing = performance.now();
    await instance.close();
    const stats = await tickDone;
    // The hanging call was cut by the abort, not by the 60 s LLM timeout.
    expect(performance.now() - closing).toBeLessThan(10_000);
    expect(stats).toMatchObject({ dueMissionCount: 1, plansWrittenBack: 0 });
    expect(stats.errors).toHaveLength(1);
    expect(stats.errors[0]).toMatch(/^mission=slow: /);
    const [row] = await suite.db.sql`SELECT lease_owner FROM mana_ai.mission_snapshots WHERE mission_id = 'slow'`;
    expect(row?.lease_owner).toBeNull();
  });

  it('renews the lease of a mission whose LLM call outlasts a third of the lease, and counts the beats', async () => {
    await insertMission('u-6', 'long');
    // The call never answers: the lease can only move through the heartbeat.
    suite.llm.script({ reply: { kind: 'hang' } });
    const instance = await app({ leaseMs: 10_000, llmTimeoutMs: 60_000, shutdownTimeoutMs: 200 });
    const tickDone = instance.dispatcher.dispatcher.runPass();
    await suite.llm.waitForRequests(1);
    const leaseUntil = async () => {
      const [row] = await suite.db.sql<{ until: Date }[]>`SELECT lease_until AS until FROM mana_ai.mission_snapshots WHERE mission_id = 'long'`;
      return row?.until?.toISOString();
    };
    // Leases run on the database's clock, whatever the instance's clock says (here: April).
    const ahead = async () => {
      const [row] = await suite.db.sql<{ ms: number }[]>`
        SELECT (extract(epoch FROM lease_until - now()) * 1000)::float8 AS ms FROM mana_ai.mission_snapshots WHERE mission_id = 'long'`;
      return row!.ms;
    };
    const first = await leaseUntil();
    expect(await ahead()).toBeGreaterThan(8_000);
    expect(await ahead()).toBeLessThanOrEqual(10_000);
    // The heartbeat (every 3.3 s) pushes the lease a whole lease ahead of the database's now.
    const deadline = performance.now() + 15_000;
    while ((await leaseUntil()) === first && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(Date.parse((await leaseUntil())!)).toBeGreaterThan(Date.parse(first!) + 3000);
    expect(await ahead()).toBeGreaterThan(9_000);
    expect(await metric(instance, 'mana_ai_lease_renewals_total{outcome="renewed",service="mana-ai"}')).toBeGreaterThanOrEqual(1);
    expect(await metric(instance, 'mana_ai_lease_renewals_total{outcome="lost",service="mana-ai"}')).toBe(0);
    // Shutdown abandons the hanging call and hands the renewed lease back.
    await instance.close();
    const stats = await tickDone;
    expect(stats).toMatchObject({ dueMissionCount: 1, plansWrittenBack: 0 });
    const [row] = await suite.db.sql`SELECT lease_owner, lease_until FROM mana_ai.mission_snapshots WHERE mission_id = 'long'`;
    expect(row).toEqual({ lease_owner: null, lease_until: null });
  }, 30_000);

  it('exports how long an open transaction has held the refresh back after each tick', async () => {
    const instance = await app();
    await tick(instance);
    const lagAfter = async (): Promise<number | undefined> => {
      await tick(instance);
      // Sampled asynchronously once the tick has finished.
      for (let attempt = 0; attempt < 50; attempt++) {
        const value = await metric(instance, 'mana_ai_feed_lag_seconds{service="mana-ai"}');
        if (value !== undefined && value >= 1) return value;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return metric(instance, 'mana_ai_feed_lag_seconds{service="mana-ai"}');
    };
    expect(await metric(instance, 'mana_ai_feed_lag_seconds{service="mana-ai"}')).toBeLessThan(1);
    const idle = await openTransaction(suite.db.connect({ max: 1 }));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const held = await lagAfter();
    await idle.end();
    expect(held).toBeGreaterThanOrEqual(1);
    expect(held).toBeLessThan(60);
  });

  it('hands back its leases when the app closes', async () => {
    await insertMission('u-3', 'held');
    const instance = await app();
    await instance.manaProjection.refresh();
    const claimed = await instance.manaProjection.claimDue({ owner: instance.pipeline.owner, limit: 10 });
    expect(claimed).toHaveLength(1);
    await instance.close();
    const [row] = await suite.db.sql`SELECT lease_owner FROM mana_ai.mission_snapshots WHERE mission_id = 'held'`;
    expect(row?.lease_owner).toBeNull();
  });

  it('answers 401 without the service key, 400 for a NUL user id and an empty list for an unknown user on the missions route', async () => {
    const instance = await app();
    const response = await instance.inject({ method: 'GET', url: '/internal/missions/u-1' });
    expect(response.statusCode).toBe(401);
    expect(response.json()).toEqual({ error: 'invalid or missing service key' });
    const nul = await instance.inject({ method: 'GET', url: '/internal/missions/a%00b', headers });
    expect(nul.statusCode).toBe(400);
    expect(nul.json()).toMatchObject({ code: 'RUNNER_BAD_REQUEST' });
    const unknown = await instance.inject({ method: 'GET', url: '/internal/missions/nobody', headers });
    expect(unknown.json()).toEqual({ userId: 'nobody', missions: [] });
  });
});

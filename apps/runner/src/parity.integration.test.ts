import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createManualClock, noopLogger } from '@mana-ai/core';
import { fakeReplies } from '@mana-ai/planner/testing';
import { type FakeResearchServer, startFakeResearchServer } from '@mana-ai/research/testing';
import { createLocalJWKSet, exportJWK, exportPKCS8, generateKeyPair, jwtVerify } from 'jose';
import { pino } from 'pino';
import type { Sql } from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { HARNESS_NOW, useInProcessApps } from '../test/in-process-app.js';
import { buildApp } from './app.js';
import { pruneTokenUsagePeriodically } from './plugins/pipeline.js';
import { JWT_ALGORITHMS } from './routes/ai-audit.js';

const SERVICE_KEY = 'parity-test-key';

let research: FakeResearchServer;
const suite = useInProcessApps({ serviceKey: SERVICE_KEY, instanceId: 'parity-test', config: () => ({ apiUrl: research.url }) });
const { app, webapp, insertMission, tick } = suite;

beforeAll(async () => {
  research = await startFakeResearchServer();
});
afterAll(async () => {
  await research?.close();
});
afterEach(() => {
  research.requests.length = 0;
});

describe('goals input', () => {
  it('reaches the prompt from the goals app by default when the webapp wrote the goal and then updated its progress', async () => {
    const client = webapp('u-goals');
    await client.insert('goals', 'companionGoals', {
      id: 'g1',
      title: '10 km pro Woche laufen',
      description: 'Ausdauer',
      target: { value: 10, period: 'week', comparison: 'gte' },
      currentValue: 3,
      period: 'week',
      status: 'active',
    });
    await client.update('goals', 'companionGoals', 'g1', { currentValue: 7 });
    await insertMission('u-goals', 'run', { inputs: [{ module: 'goals', table: 'companionGoals', id: 'g1' }] });
    suite.llm.script({ reply: fakeReplies.text('Weiter so.') });
    const stats = await tick(await app());
    expect(stats).toMatchObject({ plansWrittenBack: 1 });
    const prompt = suite.llm.requests[0]!.rawBody;
    expect(prompt).toContain('10 km pro Woche laufen');
    expect(prompt).toContain('Fortschritt: 7 / 10 (week)');
  });

  it('reads the app MANA_AI_GOALS_APP_ID names and nothing else when it is set', async () => {
    const client = webapp('u-goals-2');
    await client.insert('goals', 'companionGoals', { id: 'g1', title: 'Im goals-App', currentValue: 1, target: { value: 2 }, period: 'day' });
    await client.insert('companion', 'companionGoals', { id: 'g1', title: 'Im companion-App', currentValue: 5, target: { value: 6 }, period: 'month' });
    await insertMission('u-goals-2', 'run', { inputs: [{ module: 'goals', table: 'companionGoals', id: 'g1' }] });
    suite.llm.script({ reply: fakeReplies.text('Ok.') });
    await tick(await app({ goalsAppId: 'companion' }));
    const prompt = suite.llm.requests[0]!.rawBody;
    expect(prompt).toContain('Fortschritt: 5 / 6 (month)');
    expect(prompt).not.toContain('Im goals-App');
  });
});

describe('compaction', () => {
  it('compacts with MANA_AI_COMPACT_MODEL when the context reaches the threshold of MANA_AI_COMPACT_MAX_CTX', async () => {
    await insertMission('u-compact', 'long');
    suite.llm.script(
      { when: { hasTools: false }, reply: fakeReplies.text('## Goal\nTasks\n## Decisions\n- drei\n## Tools Called\n- create_task\n## Current Progress\nweiter') },
      { when: { hasTools: true }, reply: fakeReplies.toolCalls([{ name: 'create_task', arguments: { title: 'Schritt' } }]), times: 3 },
      { when: { hasTools: true }, reply: fakeReplies.text('Fertig.') },
    );
    // Far below the size of one request (the tool list alone), so the first history that can be folded is.
    const stats = await tick(await app({ compactMaxContext: 1000, compactModel: 'small/compactor', maxRounds: 6 }));
    expect(stats).toMatchObject({ plansWrittenBack: 1 });
    const compactions = suite.llm.requests.filter((request) => (request.body?.tools ?? []).length === 0);
    expect(compactions).toHaveLength(1);
    expect(compactions[0]!.body?.model).toBe('small/compactor');
    const planning = suite.llm.requests.filter((request) => (request.body?.tools ?? []).length > 0);
    expect(planning.every((request) => request.body?.model === 'mana/reasoning')).toBe(true);
    expect(planning.at(-1)!.rawBody).toContain('compact-summary');
  });

  it('never compacts when MANA_AI_COMPACT_MAX_CTX is 0', async () => {
    await insertMission('u-compact', 'long');
    suite.llm.script(
      { when: { hasTools: true }, reply: fakeReplies.toolCalls([{ name: 'create_task', arguments: { title: 'Schritt' } }]), times: 3 },
      { when: { hasTools: true }, reply: fakeReplies.text('Fertig.') },
    );
    await tick(await app({ compactMaxContext: 0, maxRounds: 6 }));
    expect(suite.llm.requests.filter((request) => (request.body?.tools ?? []).length === 0)).toHaveLength(0);
  });
});

describe('external tool catalog', () => {
  it('offers only the tools of MANA_AI_TOOL_CATALOG_PATH and refuses a file that is not JSON', async () => {
    const directory = mkdtempSync(join(tmpdir(), 'mana-ai-catalog-'));
    try {
      const path = join(directory, 'catalog.json');
      writeFileSync(path, JSON.stringify({ tools: [{ name: 'create_task', module: 'todo', defaultPolicy: 'propose', parameters: [{ name: 'title', type: 'string', required: true }] }] }));
      await insertMission('u-catalog', 'one');
      suite.llm.script({ reply: fakeReplies.text('Ok.') });
      await tick(await app({ toolCatalogPath: path }));
      expect(suite.llm.requests[0]!.body?.tools?.map((tool) => tool.function.name)).toEqual(['create_task']);

      writeFileSync(path, '{ not json');
      const build = () =>
        buildApp(
          { sql: suite.db.sql as unknown as Sql, logger: pino({ level: 'silent' }), clock: createManualClock(0) },
          { serviceKey: SERVICE_KEY, tickIntervalMs: 60_000, tickEnabled: false, shutdownTimeoutMs: 1000, toolCatalogPath: path },
        );
      expect(build).toThrow(expect.objectContaining({ code: 'RUNNER_CONFIG_INVALID', issues: [{ variable: 'MANA_AI_TOOL_CATALOG_PATH', expected: 'a path to a readable JSON file' }] }));
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  });
});

describe('shallow research auth', () => {
  it('sends a per-user JWT that verifies against the JWKS with the claims mana-api checks when MANA_API_AUTH is jwt', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwks = createLocalJWKSet({ keys: [{ ...(await exportJWK(publicKey)), kid: 'runner-1', alg: 'ES256' }] });
    await insertMission('u-news', 'news', { objective: 'Recherchiere aktuelle News zu Solarenergie' });
    suite.llm.script({ reply: fakeReplies.text('Ok.') });
    const stats = await tick(
      await app({
        apiAuth: 'jwt',
        apiJwtPrivateKeyPem: await exportPKCS8(privateKey),
        apiJwtAlgorithm: 'ES256',
        apiJwtKeyId: 'runner-1',
        apiJwtIssuer: 'https://auth.mana.how',
      }),
    );
    expect(stats).toMatchObject({ plansWrittenBack: 1 });
    const calls = [...research.requestsTo('discover'), ...research.requestsTo('search')];
    expect(calls).toHaveLength(2);
    for (const call of calls) {
      const token = /^Bearer (.+)$/.exec(String(call.headers.authorization))?.[1];
      // What mana-api's JWT middleware does: JWKS, issuer, audience, a subject; then the tier check.
      const { payload, protectedHeader } = await jwtVerify(token!, jwks, {
        issuer: ['https://auth.mana.how', 'http://localhost:3001'],
        audience: 'mana',
        algorithms: [...JWT_ALGORITHMS],
        // Signed on the app's (manual) clock.
        currentDate: new Date(HARNESS_NOW),
      });
      expect(protectedHeader.kid).toBe('runner-1');
      expect(payload).toMatchObject({ sub: 'u-news', tier: 'beta' });
      expect(call.headers['x-service-key']).toBeUndefined();
    }
    // The research results reached the prompt.
    expect(suite.llm.requests[0]!.rawBody).toContain('Erster Artikel');
  });
});

describe('token ledger retention', () => {
  it('deletes rows older than 48 hours on its beat and keeps the budget window, logging the count', async () => {
    const instance = await app();
    await suite.db.sql`
      INSERT INTO mana_ai.token_usage (user_id, agent_id, mission_id, tokens_used, ts)
      VALUES ('u-ledger', 'a-1', 'm-1', 100, now() - interval '3 days'), ('u-ledger', 'a-1', 'm-1', 7, now() - interval '1 hour')`;
    const lines: unknown[] = [];
    const logger = { ...noopLogger, info: (context: unknown) => void lines.push(context) };
    const stop = pruneTokenUsagePeriodically(instance.manaProjection, logger, 50);
    try {
      const deadline = performance.now() + 10_000;
      while (lines.length === 0 && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
    } finally {
      stop();
    }
    expect(lines[0]).toEqual({ deleted: 1 });
    const rows = await suite.db.sql<{ tokens_used: number }[]>`SELECT tokens_used FROM mana_ai.token_usage WHERE user_id = 'u-ledger'`;
    expect(rows).toEqual([{ tokens_used: 7 }]);
    expect(await instance.manaProjection.tokenUsageLast24h('u-ledger', 'a-1')).toBe(7);
  });
});

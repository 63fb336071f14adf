import { createManualClock } from '@mana-ai/core';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from '@mana-ai/planner/testing';
import { type Projection, createProjection } from '@mana-ai/projection';
import type { Sql } from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../../apps/runner/src/app.js';
import { createLogger } from '../../../apps/runner/src/logger.js';
import { type GrantFixture, SECRET_TEXT, captureResolvers, fixtureSecrets, seedGrantedNote } from '../support/security-crypto.js';
import { type TestDatabase, connectAsRunner, createTestDatabase, insertLogRows, missionRecord } from '../support/security-database.js';
import { type Secret, expectNoSecrets } from '../support/security-scan.js';

type App = ReturnType<typeof buildApp>;

const NOW = '2026-05-01T00:00:00.000Z';
const USER = 'u-scan';
const SERVICE_KEY = 'svc-key-scan-8d1e44c0b7';
const LLM_KEY = 'llm-key-scan-02ab9f7e51';
const NOTE = { module: 'notes', table: 'notes', id: 'n1' };
const clock = createManualClock(NOW);

let db: TestDatabase;
let runner: Sql;
let projection: Projection;
let fixture: GrantFixture;
let secrets: Secret[];

beforeAll(async () => {
  db = await createTestDatabase();
  runner = await connectAsRunner(db);
  projection = createProjection({ sql: runner });
  fixture = await seedGrantedNote(db.sql, clock, USER, 'm-a');
  secrets = [
    ...fixtureSecrets(fixture),
    ['service key', SERVICE_KEY],
    ['llm key', LLM_KEY],
  ];
});
afterAll(() => db.drop());

describe('input resolvers with a real grant and encrypted note', () => {
  it('log nothing of the note, its ciphertext, the grant or the key at trace level', async () => {
    const subject = await captureResolvers(runner, projection, clock, fixture.keys.privateKeyPem);
    const resolved = await subject.resolvers.resolve({ userId: USER, missionId: 'm-a', iterationId: 'it-1', grant: fixture.grant, inputs: [NOTE] });
    // The decryption really happened: the plaintext exists, and only in the result.
    expect(resolved[0]?.content).toBe(SECRET_TEXT.content);
    // Failure paths log too: a mismatched grant, a record outside the grant, a tampered value.
    await subject.resolvers.resolve({ userId: USER, missionId: 'm-other', grant: fixture.grant, inputs: [NOTE] });
    await subject.resolvers.resolve({
      userId: USER,
      missionId: 'm-a',
      grant: fixture.grant,
      inputs: [{ module: 'todo', table: 'tasks', id: 't1' }, { module: 'notes', table: 'notes', id: 'n2' }],
    });
    await insertLogRows(db.sql, [
      { userId: USER, recordId: 'n2', appId: 'notes', table: 'notes', dataJson: JSON.stringify({ content: `${fixture.ciphertexts[1]?.slice(0, -4)}AAAA` }) },
    ]);
    await subject.resolvers.resolve({ userId: USER, missionId: 'm-a', grant: fixture.grant, inputs: [{ module: 'notes', table: 'notes', id: 'n2' }] });
    expect(subject.logLines.length).toBeGreaterThan(0);
    expectNoSecrets('resolver log', subject.logLines.join('\n'), secrets);
    expectNoSecrets('resolver events', JSON.stringify(subject.events), secrets);
  });
});

describe('the runner app running a real tick', () => {
  let app: App;
  let llm: FakeLlmServer;
  const logLines: string[] = [];

  beforeAll(async () => {
    llm = await createFakeLlmServer({ defaultReply: fakeReplies.text('Ich habe die Notiz gelesen und schlage nichts vor.') });
    await insertLogRows(db.sql, [
      { userId: USER, recordId: 'm-a', dataJson: JSON.stringify(missionRecord('m-a', { grant: fixture.grant, inputs: [NOTE] })) },
      // Still ciphertext: skipped, never sent to the LLM or logged.
      { userId: USER, recordId: 'm-cipher', dataJson: JSON.stringify(missionRecord('m-cipher', { title: fixture.ciphertexts[0], objective: fixture.ciphertexts[1] })) },
      // Mission A's grant presented by another mission.
      { userId: USER, recordId: 'm-borrowed', dataJson: JSON.stringify(missionRecord('m-borrowed', { grant: fixture.grant, inputs: [NOTE] })) },
    ]);
    app = buildApp(
      {
        sql: runner,
        logger: createLogger({ level: 'trace', destination: { write: (line: string) => void logLines.push(line) } }),
        clock,
      },
      {
        serviceKey: SERVICE_KEY,
        tickIntervalMs: 60_000,
        tickEnabled: false,
        shutdownTimeoutMs: 5000,
        llmUrl: llm.url,
        llmApiKey: LLM_KEY,
        llmMaxRetries: 0,
        llmTimeoutMs: 10_000,
        privateKeyPem: fixture.keys.privateKeyPem,
        apiUrl: 'http://127.0.0.1:1',
        researchUrl: 'http://127.0.0.1:1',
        concurrency: 2,
        instanceId: 'scan-1',
      },
    );
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
    await llm?.close();
  });

  it('plans with the decrypted note and leaks no secret into logs, metrics or responses', async () => {
    const tick = await app.inject({ method: 'POST', url: '/internal/tick', headers: { 'x-service-key': SERVICE_KEY } });
    expect(tick.statusCode).toBe(200);
    expect(tick.json()).toMatchObject({ dueMissionCount: 3, plansProduced: 2, plansWrittenBack: 2 });
    // The plaintext reached the LLM for the mission that owns the grant, ciphertext never did.
    const prompts = llm.requests.map((request) => request.rawBody);
    expect(prompts.some((body) => body.includes(SECRET_TEXT.content))).toBe(true);
    for (const body of prompts) expect(body).not.toContain('enc:1:');
    expect(llm.requests.every((request) => request.headers.authorization === `Bearer ${LLM_KEY}`)).toBe(true);

    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toMatch(/mana_ai_decrypts_total\{[^}]*table="notes"[^}]*\} 2/);
    expect(metrics.body).toMatch(/mana_ai_grant_skips_total\{[^}]*reason="mission-mismatch"[^}]*\} 1/);
    expect(metrics.body).toMatch(/mana_ai_missions_skipped_total\{[^}]*reason="ciphertext-mission"[^}]*\} 1/);
    const missions = await app.inject({ method: 'GET', url: `/internal/missions/${USER}`, headers: { 'x-service-key': SERVICE_KEY } });
    expect(missions.statusCode).toBe(200);
    const health = await app.inject({ method: 'GET', url: '/health' });

    // The paths that handle the secrets did log: grant skipped, mission planned.
    const messages = new Set(logLines.map((line) => (JSON.parse(line) as { msg?: string }).msg));
    expect(messages).toContain('grant unwrap skipped');
    expect(messages).toContain('mission planned');
    expectNoSecrets('runner log', logLines.join('\n'), secrets);
    expectNoSecrets('metrics', metrics.body, secrets);
    expectNoSecrets('tick response', tick.body, secrets);
    expectNoSecrets('missions view', missions.body, secrets);
    expectNoSecrets('health', health.body, secrets);
  });
});

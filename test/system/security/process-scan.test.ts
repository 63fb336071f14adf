import { systemClock } from '@mana-ai/core';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from '@mana-ai/planner/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GrantFixture, SECRET_TEXT, fixtureSecrets, seedGrantedNote } from '../support/security-crypto.js';
import { type TestDatabase, createTestDatabase, insertLogRows, missionRecord } from '../support/security-database.js';
import { type BuiltRunner, startBuiltRunner } from '../support/runner-process.js';
import { type Secret, expectNoSecrets } from '../support/security-scan.js';

const USER = 'u-process';
const SERVICE_KEY = 'svc-key-process-3c9a71e2f4';
const LLM_KEY = 'llm-key-process-55d0b8a1c6';
const NOTE = { module: 'notes', table: 'notes', id: 'n1' };

let db: TestDatabase;
let llm: FakeLlmServer;
let fixture: GrantFixture;
let runner: BuiltRunner | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  // The runner uses the real clock: the grant must be valid now.
  fixture = await seedGrantedNote(db.sql, systemClock, USER, 'm-a');
  await insertLogRows(db.sql, [
    { userId: USER, recordId: 'm-a', dataJson: JSON.stringify(missionRecord('m-a', { grant: fixture.grant, inputs: [NOTE] })) },
    { userId: USER, recordId: 'm-cipher', dataJson: JSON.stringify(missionRecord('m-cipher', { title: fixture.ciphertexts[0] })) },
    { userId: USER, recordId: 'm-borrowed', dataJson: JSON.stringify(missionRecord('m-borrowed', { grant: fixture.grant, inputs: [NOTE] })) },
  ]);
  llm = await createFakeLlmServer({ defaultReply: fakeReplies.text('Gelesen, nichts zu tun.') });
  // The lead's e2e launcher: `node apps/runner/dist/cli.js start` on a free port, healthy before use.
  runner = await startBuiltRunner({
    DATABASE_URL: db.url,
    NODE_ENV: 'production',
    LOG_LEVEL: 'trace',
    MANA_SERVICE_KEY: SERVICE_KEY,
    MANA_LLM_URL: llm.url,
    MANA_LLM_API_KEY: LLM_KEY,
    MANA_LLM_MAX_RETRIES: '0',
    MANA_AI_PRIVATE_KEY_PEM: fixture.keys.privateKeyPem,
    MANA_API_URL: 'http://127.0.0.1:1',
    MANA_RESEARCH_URL: 'http://127.0.0.1:1',
    MANA_AUTH_URL: 'http://127.0.0.1:1',
    TICK_ENABLED: 'false',
    MANA_AI_INSTANCE_ID: 'process-scan',
  });
}, 60_000);

afterAll(async () => {
  await runner?.stop(10_000);
  await llm?.close();
  await db?.drop();
});

describe('a runner process planning a mission with an encrypted input', () => {
  it('writes no plaintext, ciphertext, key material or credential to stdout, stderr or /metrics when it plans', async () => {
    const secrets: Secret[] = [
      ...fixtureSecrets(fixture),
      ['service key', SERVICE_KEY],
      ['llm key', LLM_KEY],
      ['database password', new URL(db.url).password],
    ];
    const tick = await fetch(`${runner?.baseUrl}/internal/tick`, { method: 'POST', headers: { 'x-service-key': SERVICE_KEY } });
    const tickBody = await tick.text();
    expect(tick.status).toBe(200);
    expect(JSON.parse(tickBody)).toMatchObject({ plansProduced: 2, plansWrittenBack: 2, skipped: { 'ciphertext-mission': 1 } });
    expect(llm.requests.some((request) => request.rawBody.includes(SECRET_TEXT.content))).toBe(true);
    const rejected = await fetch(`${runner?.baseUrl}/internal/tick`, { method: 'POST', headers: { 'x-service-key': `${SERVICE_KEY}x` } });
    expect(rejected.status).toBe(401);
    const metrics = await (await fetch(`${runner?.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/mana_ai_decrypts_total\{[^}]*table="notes"[^}]*\} 2/);

    // Let the last lines reach the pipes before scanning them.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const output = runner?.output() ?? '';
    expect(output).toContain('mission planned');
    expect(output).toContain('grant unwrap skipped');
    expectNoSecrets('stdout and stderr', output, secrets);
    expectNoSecrets('metrics', metrics, secrets);
    expectNoSecrets('tick response', tickBody, secrets);
  });
});

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { systemClock } from '@mana-ai/core';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from '@mana-ai/planner/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GrantFixture, SECRET_TEXT, seedGrantedNote } from '../support/security-crypto.js';
import { type TestDatabase, createTestDatabase, insertLogRows, missionRecord } from '../support/security-database.js';
import { type Secret, expectNoSecrets, pemFragments } from '../support/security-scan.js';

const CLI = fileURLToPath(new URL('../../../apps/runner/dist/cli.js', import.meta.url));
const USER = 'u-process';
const SERVICE_KEY = 'svc-key-process-3c9a71e2f4';
const LLM_KEY = 'llm-key-process-55d0b8a1c6';
const NOTE = { module: 'notes', table: 'notes', id: 'n1' };

let db: TestDatabase;
let llm: FakeLlmServer;
let fixture: GrantFixture;
let child: ChildProcess | undefined;
let stdout = '';
let stderr = '';
let baseUrl = '';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function waitForHealth(deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    if (child?.exitCode !== null) throw new Error(`runner exited early (${child?.exitCode}): ${stderr.slice(-500)}`);
    try {
      if ((await fetch(`${baseUrl}/health`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('runner did not become healthy in time');
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error('apps/runner is not built: run `pnpm turbo run build --filter=@mana-ai/runner...` first');
  db = await createTestDatabase();
  // The runner uses the real clock: the grant must be valid now.
  fixture = await seedGrantedNote(db.sql, systemClock, USER, 'm-a');
  await insertLogRows(db.sql, [
    { userId: USER, recordId: 'm-a', dataJson: JSON.stringify(missionRecord('m-a', { grant: fixture.grant, inputs: [NOTE] })) },
    { userId: USER, recordId: 'm-cipher', dataJson: JSON.stringify(missionRecord('m-cipher', { title: fixture.ciphertexts[0] })) },
    { userId: USER, recordId: 'm-borrowed', dataJson: JSON.stringify(missionRecord('m-borrowed', { grant: fixture.grant, inputs: [NOTE] })) },
  ]);
  llm = await createFakeLlmServer({ defaultReply: fakeReplies.text('Gelesen, nichts zu tun.') });
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {};
  for (const name of ['PATH', 'HOME', 'TMPDIR', 'LANG']) if (process.env[name]) env[name] = process.env[name] as string;
  child = spawn(process.execPath, [CLI, 'start'], {
    env: {
      ...env,
      DATABASE_URL: db.url,
      PORT: String(port),
      HOST: '127.0.0.1',
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
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (chunk) => {
    stdout += String(chunk);
  });
  child.stderr?.on('data', (chunk) => {
    stderr += String(chunk);
  });
  await waitForHealth(Date.now() + 30_000);
}, 60_000);

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child?.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child?.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  await llm?.close();
  await db?.drop();
});

describe('a runner process planning a mission with an encrypted input', () => {
  it('writes no plaintext, ciphertext, key material or credential to stdout, stderr or /metrics', async () => {
    const secrets: Secret[] = [
      ['note title', SECRET_TEXT.title],
      ['note content', SECRET_TEXT.content],
      ['task title', SECRET_TEXT.task],
      ...fixture.ciphertexts.map((text, index): Secret => [`ciphertext ${index}`, text]),
      ...pemFragments(fixture.keys.privateKeyPem).map((line, index): Secret => [`private key line ${index}`, line]),
      ['service key', SERVICE_KEY],
      ['llm key', LLM_KEY],
      ['database password', new URL(db.url).password],
    ];
    const tick = await fetch(`${baseUrl}/internal/tick`, { method: 'POST', headers: { 'x-service-key': SERVICE_KEY } });
    const tickBody = await tick.text();
    expect(tick.status).toBe(200);
    expect(JSON.parse(tickBody)).toMatchObject({ plansProduced: 2, plansWrittenBack: 2, skipped: { 'ciphertext-mission': 1 } });
    expect(llm.requests.some((request) => request.rawBody.includes(SECRET_TEXT.content))).toBe(true);
    const rejected = await fetch(`${baseUrl}/internal/tick`, { method: 'POST', headers: { 'x-service-key': `${SERVICE_KEY}x` } });
    expect(rejected.status).toBe(401);
    const metrics = await (await fetch(`${baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/mana_ai_decrypts_total\{[^}]*table="notes"[^}]*\} 2/);

    // Let the last lines reach the pipes before scanning them.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(stdout).toContain('mission planned');
    expect(stdout).toContain('grant unwrap skipped');
    expectNoSecrets('stdout', stdout, secrets);
    expectNoSecrets('stderr', stderr, secrets);
    expectNoSecrets('metrics', metrics, secrets);
    expectNoSecrets('tick response', tickBody, secrets);
  });
});

import { type TestDatabase, createTestDatabase } from '@mana-ai/test-postgres';
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from './embedded-postgres.js';
import { type RunnerProcess, assertWorkspaceBuilt, spawnRunner } from '../test/spawn-runner.js';

describe('the mana-ai CLI', () => {
  let db: TestDatabase;
  const runners: RunnerProcess[] = [];

  async function run(args: string[], env: Record<string, string> = {}) {
    const runner = spawnRunner(args, env);
    runners.push(runner);
    const exit = await Promise.race([
      runner.exited,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`mana-ai ${args.join(' ')} timed out`)), 30_000)),
    ]);
    return { code: exit.code, stdout: runner.stdout(), stderr: runner.stderr() };
  }

  beforeAll(async () => {
    assertWorkspaceBuilt();
    db = await createTestDatabase();
  });
  afterAll(async () => {
    for (const runner of runners) runner.kill();
    await db?.drop();
  });

  it('prints exactly one TickStats JSON on stdout and logs on stderr when running tick --once', async () => {
    const result = await run(['tick', '--once'], { DATABASE_URL: db.url });
    expect(result.code).toBe(0);
    const stats = JSON.parse(result.stdout);
    expect(stats).toEqual({
      scannedAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      dueMissionCount: 0,
      plansProduced: 0,
      plansWrittenBack: 0,
      parseFailures: 0,
      errors: [],
      skipped: {},
    });
    const logLines = result.stderr.trim().split('\n');
    expect(logLines.length).toBeGreaterThan(0);
    for (const line of logLines) {
      expect(JSON.parse(line)).toMatchObject({
        service: 'mana-ai',
        level: expect.stringMatching(/^(trace|debug|info|warn|error|fatal)$/),
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        instanceId: expect.any(String),
      });
    }
  }, 40_000);

  it('prints the migration report and applies nothing the second time when running migrate twice', async () => {
    const first = await run(['migrate'], { DATABASE_URL: db.url });
    expect(first.code).toBe(0);
    const report = JSON.parse(first.stdout) as { applied: string[]; skipped: string[] };
    // The child runs the built packages (dist), whose migration list may briefly differ from the
    // sources the test template was migrated with, so compare the two runs with each other.
    const ids = [...report.applied, ...report.skipped].sort();
    expect(ids.length).toBeGreaterThan(0);
    const second = await run(['migrate'], { DATABASE_URL: db.url });
    expect(second.code).toBe(0);
    const again = JSON.parse(second.stdout) as { applied: string[]; skipped: string[] };
    expect(again.applied).toEqual([]);
    expect([...again.skipped].sort()).toEqual(ids);
  }, 60_000);

  it('refuses a database without sync_changes, creating nothing in it, when start or migrate is pointed at it', async () => {
    const { adminUrl } = inject('manaAiTestPostgres');
    const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
    const name = `unrelated_${randomBytes(6).toString('hex')}`;
    await admin.unsafe(`CREATE DATABASE ${name}`);
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    const unrelated = postgres(url.toString(), { max: 1, onnotice: () => {} });
    try {
      for (const command of ['start', 'migrate']) {
        const result = await run([command], { DATABASE_URL: url.toString(), PORT: String(await freePort()), HOST: '127.0.0.1' });
        expect(result.code, command).toBe(1);
        expect(result.stderr, command).toContain('failed (RUNNER_SYNC_CHANGES_MISSING)');
        expect(result.stderr, command).toContain('public.sync_changes');
        expect(result.stderr, command).toContain('docs/database.md');
      }
      const [created] = await unrelated<{ syncChanges: boolean; schema: boolean }[]>`
        SELECT to_regclass('public.sync_changes') IS NOT NULL AS "syncChanges",
          EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'mana_ai') AS schema`;
      expect(created).toEqual({ syncChanges: false, schema: false });
    } finally {
      await unrelated.end({ timeout: 5 });
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end({ timeout: 5 });
    }
  }, 90_000);

  it('exits 1 naming every bad variable without echoing values when the configuration is bad', async () => {
    const result = await run(['start'], {
      PORT: 'eighty',
      DATABASE_URL: 'mysql://root:cli-db-secret@h/x',
      NODE_ENV: 'production',
      POLICY_MODE: 'paranoid',
    });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    for (const name of ['PORT', 'DATABASE_URL', 'POLICY_MODE', 'MANA_SERVICE_KEY']) expect(result.stderr).toContain(name);
    for (const value of ['eighty', 'cli-db-secret', 'paranoid']) expect(result.stderr).not.toContain(value);
  }, 40_000);

  it('prints usage with exit 0 for --help and exits 1 for an unknown command or a bare tick', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('mana-ai tick --once');
    const unknown = await run(['serve']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('unknown command "serve"');
    const bare = await run(['tick']);
    expect(bare.code).toBe(1);
    expect(bare.stderr).toContain('--once');
  }, 60_000);
});

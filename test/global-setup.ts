import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { type EmbeddedPostgresHandle, startEmbeddedPostgres } from '../apps/runner/src/embedded-postgres.js';
import { migrate } from '../apps/runner/src/migrate.js';

/**
 * Starts one PostgreSQL for the whole test run — `TEST_DATABASE_URL` when given (a role that may
 * create databases and roles), otherwise a throwaway embedded cluster — and builds a migrated
 * template database that each test file clones (see @mana-ai/test-postgres).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let cluster: EmbeddedPostgresHandle | undefined;
  let scratch: string | undefined;
  let adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) {
    scratch = await mkdtemp(join(tmpdir(), 'mana-ai-test-pg-'));
    cluster = await startEmbeddedPostgres({ dataDir: scratch, persistent: false, fast: true });
    adminUrl = cluster.url;
  }
  const template = `mana_ai_template_${process.pid}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`);
  await admin.unsafe(`CREATE DATABASE ${template}`);
  const templateUrl = new URL(adminUrl);
  templateUrl.pathname = `/${template}`;
  const templateSql = postgres(templateUrl.toString(), { max: 1, onnotice: () => {} });
  try {
    await migrate(templateSql);
  } finally {
    await templateSql.end();
  }
  project.provide('manaAiTestPostgres', { adminUrl, template });

  return async () => {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`).catch(() => {});
    await admin.end();
    await cluster?.stop();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  };
}

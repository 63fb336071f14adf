import { createEventBus } from '@mana-ai/core';
import { type TestDatabase, type TestLoginRole, createTestDatabase } from '@mana-ai/test-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DecryptAudit, clampAuditLimit, createDecryptAudit } from './audit.js';
import type { ResolverEvents } from './events.js';
import { migrations } from './migrations.js';
import { AUDIT_WRITER_PRIVILEGES } from '../test/audit-writer.js';

const ROLE = `audit_${Math.random().toString(36).slice(2, 10)}`;
let db: TestDatabase;
let role: TestLoginRole;
let audit: DecryptAudit;
const events = createEventBus<ResolverEvents>();
const audited: ResolverEvents['decrypt.audited'][] = [];
events.on('decrypt.audited', (payload) => audited.push(payload));

beforeAll(async () => {
  db = await createTestDatabase();
  role = await db.loginRole(ROLE, AUDIT_WRITER_PRIVILEGES);
  audit = createDecryptAudit({ sql: role.sql, events });
  const entries = [
    { userId: 'u1', missionId: 'm1', iterationId: 'i1', tableName: 'notes', recordId: 'n1', status: 'ok' as const },
    { userId: 'u1', missionId: 'm1', tableName: 'notes', recordId: 'n2', status: 'failed' as const, reason: 'ciphertext-malformed' },
    { userId: 'u1', missionId: 'm2', tableName: 'tasks', recordId: 't1', status: 'scope-violation' as const, reason: 'table-not-in-grant' },
    { userId: 'u2', missionId: 'm1', tableName: 'notes', recordId: 'x1', status: 'ok' as const },
  ];
  for (const entry of entries) await audit.write(entry);
  await db.sql`INSERT INTO mana_ai.decrypt_audit (user_id, mission_id, table_name, record_id, status, ts)
               SELECT 'u3', 'm1', 'notes', 'r' || n, 'ok', now() - n * interval '1 second' FROM generate_series(1, 1100) AS n`;
});

afterAll(async () => {
  await role?.drop();
  await db.drop();
});

describe('clampAuditLimit', () => {
  it('defaults to 200 and clamps to 1…1000 when given odd values', () => {
    expect(clampAuditLimit(undefined)).toBe(200);
    expect(clampAuditLimit(Number.NaN)).toBe(200);
    expect(clampAuditLimit(Number.POSITIVE_INFINITY)).toBe(200);
    expect(clampAuditLimit(0)).toBe(1);
    expect(clampAuditLimit(-5)).toBe(1);
    expect(clampAuditLimit(5000)).toBe(1000);
    expect(clampAuditLimit(7.9)).toBe(7);
  });
});

describe('createDecryptAudit', () => {
  it('returns the caller’s rows newest first in the docs/wire-contract.md#routes shape when reading', async () => {
    const rows = await audit.read('u1');
    expect(rows.map((row) => row.recordId)).toEqual(['t1', 'n2', 'n1']);
    const first = rows[2]!;
    expect(Object.keys(first)).toEqual(['id', 'missionId', 'iterationId', 'tableName', 'recordId', 'status', 'reason', 'ts']);
    expect(first).toMatchObject({
      missionId: 'm1',
      iterationId: 'i1',
      tableName: 'notes',
      recordId: 'n1',
      status: 'ok',
      reason: null,
    });
    expect(first.id).toMatch(/^\d+$/);
    expect(first.ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(rows[1]).toMatchObject({ iterationId: null, status: 'failed', reason: 'ciphertext-malformed' });
  });

  it('returns only the given mission’s rows when a mission filter is set', async () => {
    expect((await audit.read('u1', { missionId: 'm2' })).map((row) => row.recordId)).toEqual(['t1']);
    expect(await audit.read('u1', { missionId: 'nope' })).toEqual([]);
  });

  it('never returns another user’s rows when reading', async () => {
    expect((await audit.read('u2')).map((row) => row.recordId)).toEqual(['x1']);
    expect(await audit.read('u9')).toEqual([]);
  });

  it('hides every row from the runner role when no user is set (RLS)', async () => {
    expect(await role.sql`SELECT id FROM mana_ai.decrypt_audit`).toHaveLength(0);
  });

  it('refuses a row for another user than the transaction’s user (RLS check)', async () => {
    const attempt = role.sql.begin(async (tx) => {
      await tx`SELECT set_config('app.current_user_id', 'u1', true)`;
      await tx`INSERT INTO mana_ai.decrypt_audit (user_id, mission_id, table_name, record_id, status)
               VALUES ('u2', 'm1', 'notes', 'n1', 'ok')`;
    });
    await expect(attempt).rejects.toThrow(/row-level security/);
  });

  it('clamps the limit to 1…1000 and defaults to 200 when reading many rows', async () => {
    expect(await audit.read('u3')).toHaveLength(200);
    expect(await audit.read('u3', { limit: 5000 })).toHaveLength(1000);
    expect(await audit.read('u3', { limit: 0 })).toHaveLength(1);
    expect((await audit.read('u3', { limit: 3 })).map((row) => row.recordId)).toEqual(['r1', 'r2', 'r3']);
  });

  it('rejects with RESOLVERS_INVALID_ARGUMENT when the user id is empty', async () => {
    await expect(audit.read('')).rejects.toMatchObject({ code: 'RESOLVERS_INVALID_ARGUMENT' });
  });

  it('emits decrypt.audited for every written row', () => {
    expect(audited).toHaveLength(4);
    expect(audited[2]).toEqual({ missionId: 'm2', table: 'tasks', status: 'scope-violation', reason: 'table-not-in-grant' });
  });
});

describe('migrations', () => {
  it('resolves true when the row is written and false when a trigger makes the insert raise', async () => {
    await db.sql.unsafe(`
      CREATE FUNCTION mana_ai.refuse_audit() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$;
      CREATE TRIGGER refuse_audit BEFORE INSERT ON mana_ai.decrypt_audit
        FOR EACH ROW WHEN (NEW.mission_id = 'm-refused') EXECUTE FUNCTION mana_ai.refuse_audit();`);
    const failed: ResolverEvents['decrypt.audit-failed'][] = [];
    const off = events.on('decrypt.audit-failed', (payload) => failed.push(payload));
    try {
      const entry = { userId: 'u4', tableName: 'notes', recordId: 'n1', status: 'ok' as const };
      expect(await audit.write({ ...entry, missionId: 'm-refused' })).toBe(false);
      expect(await audit.write({ ...entry, missionId: 'm-kept' })).toBe(true);
      expect(failed).toEqual([{ missionId: 'm-refused', table: 'notes', error: 'PostgresError' }]);
      expect((await audit.read('u4')).map((row) => row.missionId)).toEqual(['m-kept']);
    } finally {
      off();
      await db.sql.unsafe('DROP TRIGGER refuse_audit ON mana_ai.decrypt_audit; DROP FUNCTION mana_ai.refuse_audit()');
    }
  });

  it('can be applied again without error and keeps one policy', async () => {
    for (const migration of migrations) await db.sql.unsafe(migration.sql);
    const policies = await db.sql`
      SELECT policyname FROM pg_policies WHERE schemaname = 'mana_ai' AND tablename = 'decrypt_audit'`;
    expect(policies.map((row) => row.policyname)).toEqual(['decrypt_audit_user_scope']);
    const [table] = await db.sql`
      SELECT relrowsecurity FROM pg_class WHERE oid = 'mana_ai.decrypt_audit'::regclass`;
    expect(table?.relrowsecurity).toBe(true);
  });
});

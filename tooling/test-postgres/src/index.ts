import { randomBytes } from 'node:crypto';
import postgres, { type Options, type Sql } from 'postgres';
import { inject } from 'vitest';

/** What the root global setup provides to every test file. */
export interface TestPostgresContext {
  /** Superuser URL of the maintenance database. */
  adminUrl: string;
  /** Name of the migrated template database every test database is cloned from. */
  template: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    manaAiTestPostgres: TestPostgresContext;
  }
}

/** A fresh database for one test file, cloned from the migrated template. */
export interface TestDatabase {
  /** Database name. */
  readonly name: string;
  /** Superuser connection URL of this database. */
  readonly url: string;
  /** A superuser client on this database (closed by {@link TestDatabase.drop}). */
  readonly sql: Sql;
  /** The URL of this database for another role (`user`/`password`). */
  urlFor(user: string, password: string): string;
  /** Opens another client on this database (closed by {@link TestDatabase.drop}). */
  connect(options?: Options<Record<string, postgres.PostgresType>> & { url?: string }): Sql;
  /**
   * Creates the login role `name` (cluster-wide: the name must be unique to the test file) holding
   * only `privileges` in this database, each granted as `GRANT <privilege> TO name` (e.g. `SELECT ON
   * mana_ai.decrypt_audit`), and connects as it.
   */
  loginRole(name: string, privileges: readonly string[]): Promise<TestLoginRole>;
  /** Closes every client and drops the database. */
  drop(): Promise<void>;
}

/** A role made by {@link TestDatabase.loginRole}. */
export interface TestLoginRole {
  /** A client connected as the role. */
  readonly sql: Sql;
  /** Ends that client and drops the role, with what it owns or was granted in this database. */
  drop(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

function withUser(url: string, user: string, password: string): string {
  const parsed = new URL(url);
  parsed.username = encodeURIComponent(user);
  parsed.password = encodeURIComponent(password);
  return parsed.toString();
}

/** Creates a database cloned from the migrated template; call once per test file. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const context = inject('manaAiTestPostgres');
  if (!context) throw new Error('the mana-ai test global setup did not run (use the root vitest config)');
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = postgres(context.adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`CREATE DATABASE ${name} TEMPLATE ${context.template}`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(context.adminUrl, name);
  const clients: Sql[] = [];
  const connect: TestDatabase['connect'] = (options = {}) => {
    const { url: target, ...rest } = options;
    const client = postgres(target ?? url, { max: 4, onnotice: () => {}, ...rest });
    clients.push(client);
    return client;
  };
  const sql = connect();
  return {
    name,
    url,
    sql,
    urlFor: (user, password) => withUser(url, user, password),
    connect,
    async loginRole(role, privileges) {
      await sql.unsafe(`CREATE ROLE ${role} LOGIN PASSWORD 'pw'`);
      for (const privilege of privileges) await sql.unsafe(`GRANT ${privilege} TO ${role}`);
      const client = connect({ url: withUser(url, role, 'pw') });
      return {
        sql: client,
        async drop() {
          await client.end({ timeout: 5 });
          await sql.unsafe(`DROP OWNED BY ${role}; DROP ROLE ${role}`);
        },
      };
    },
    async drop() {
      await Promise.all(clients.map((client) => client.end({ timeout: 5 })));
      const dropper = postgres(context.adminUrl, { max: 1, onnotice: () => {} });
      try {
        await dropper.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await dropper.end();
      }
    },
  };
}

/** A transaction held open by a test until {@link OpenTransaction.end}. */
export interface OpenTransaction {
  /** Runs `query` inside the open transaction (for example an INSERT that commits only at `end`). */
  run<T>(query: (tx: postgres.TransactionSql) => Promise<T>): Promise<T>;
  /** Commits the transaction and waits for it to finish. */
  end(): Promise<void>;
}

/**
 * Begins a transaction on `sql` (use a client of its own: it keeps one connection) and holds it open,
 * the way an idle-in-transaction session or a slow writer does, until `end()` commits it.
 */
export async function openTransaction(sql: Sql): Promise<OpenTransaction> {
  let commit!: () => void;
  const committed = new Promise<void>((resolve) => {
    commit = resolve;
  });
  let handOver!: (tx: postgres.TransactionSql) => void;
  const started = new Promise<postgres.TransactionSql>((resolve) => {
    handOver = resolve;
  });
  const done = sql.begin(async (tx) => {
    await tx`SELECT 1`;
    handOver(tx);
    await committed;
  });
  const tx = await Promise.race([started, done.then(() => Promise.reject(new Error('the transaction ended before it was open')))]);
  return {
    run: (query) => query(tx),
    async end() {
      commit();
      await done;
    },
  };
}

export { RUNNER_PASSWORD, runnerUrl, connectAsRunner, clearProjection, type LogRow, insertLogRows, missionRecord, agentRecord } from './sync-log.js';

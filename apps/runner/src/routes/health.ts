import { describeError } from '@mana-ai/core';
import type { FastifyInstance } from 'fastify';
import type { Sql } from 'postgres';

/** Options of the health route. */
export interface HealthRouteOptions {
  sql: Sql;
  version: string;
  /** How long the `SELECT 1` may take before the database counts as down (default 1000 ms). */
  databaseTimeoutMs?: number;
}

type DatabaseState = { ok: true } | { ok: false; error: 'timeout' | 'unavailable' };

async function checkDatabase(sql: Sql, timeoutMs: number, log: FastifyInstance['log']): Promise<DatabaseState> {
  const query = sql`SELECT 1`;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<DatabaseState>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, error: 'timeout' }), timeoutMs);
  });
  const answer = query.then(
    (): DatabaseState => ({ ok: true }),
    (error: unknown): DatabaseState => {
      log.warn({ error: describeError(error) }, 'health check: database unavailable');
      return { ok: false, error: 'unavailable' };
    },
  );
  const state = await Promise.race([answer, timeout]);
  clearTimeout(timer);
  if (!state.ok && state.error === 'timeout') {
    log.warn({ timeoutMs }, 'health check: database timed out');
    // Drop the query (queued or running) so a dead database does not pile up health checks.
    query.cancel();
  }
  return state;
}

/**
 * `GET /health`: readiness, with a bounded database check; 503 when the database is down.
 * `GET /health/live`: liveness, never touching the database, so a database outage does not get
 * every instance restarted.
 */
export default async function healthRoute(app: FastifyInstance, options: HealthRouteOptions): Promise<void> {
  const timeoutMs = options.databaseTimeoutMs ?? 1000;
  // Probes hit these every few seconds: request logs only for warnings and worse.
  app.get('/health/live', { logLevel: 'warn' }, async () => ({ ok: true, service: 'mana-ai', version: options.version }));
  app.get('/health', { logLevel: 'warn' }, async (request, reply) => {
    const database = await checkDatabase(options.sql, timeoutMs, request.log);
    return reply.code(database.ok ? 200 : 503).send({
      ok: database.ok,
      service: 'mana-ai',
      version: options.version,
      tick: { enabled: app.dispatcher.enabled, running: app.dispatcher.running },
      database,
    });
  });
}

import { type Clock, type Dispatcher, describeError, systemClock } from '@mana-ai/core';
import type { FastifyInstance } from 'fastify';
import type { Logger as PinoLogger } from 'pino';
import { buildApp } from './app.js';
import type { RunnerConfig } from './config.js';
import { type Database, openDatabase } from './database.js';
import { createLogger } from './logger.js';
import { migrate } from './migrate.js';
import { RUNNER_VERSION } from './version.js';

// Beyond the in-flight runs' bound, shutdown gets this long for HTTP, the pool and Postgres.
const SHUTDOWN_SLACK_MS = 20_000;

/** Options of {@link startServer}. */
export interface StartServerOptions {
  logger?: PinoLogger;
  clock?: Clock;
  /** Replaces the pipeline's dispatcher (tests of the host alone); default: the wired pipeline's. */
  dispatcher?: Dispatcher;
  /** Install SIGTERM/SIGINT handlers that shut down and exit the process (default true). */
  handleSignals?: boolean;
  /** Embedded cluster data directory (default `.mana-ai/pg`). */
  dataDir?: string;
}

/** A listening runner. */
export interface RunningServer {
  app: FastifyInstance;
  /** The address it listens on, e.g. `http://127.0.0.1:3067`. */
  address: string;
  /** Stops the dispatcher (bounded wait for the runs in flight), the HTTP server, the pool and the embedded cluster. */
  stop(): Promise<void>;
}

/**
 * Boots the runner: database (embedded when `DATABASE_URL` is unset), migrations, app, listen.
 * With `handleSignals`, SIGTERM/SIGINT stop it gracefully and exit 0; a second signal exits at once.
 */
export async function startServer(config: RunnerConfig, options: StartServerOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? createLogger({ level: config.logLevel });
  const clock = options.clock ?? systemClock;
  let stop: (() => Promise<void>) | undefined;
  let pendingSignal: NodeJS.Signals | undefined;

  const shutdown = (signal: NodeJS.Signals, stopNow: () => Promise<void>) => {
    logger.info({ signal }, 'shutting down');
    const deadline = setTimeout(() => {
      logger.fatal({ timeoutMs: config.shutdownTimeoutMs + SHUTDOWN_SLACK_MS }, 'shutdown took too long: exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs + SHUTDOWN_SLACK_MS);
    deadline.unref();
    stopNow().then(
      () => {
        logger.info({}, 'stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ error: describeError(error) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    signalled = true;
    if (stop) shutdown(signal, stop);
    else {
      // Killing the process mid-boot could orphan the embedded PostgreSQL: finish booting, then stop.
      pendingSignal = signal;
      logger.info({ signal }, 'signal received while booting: stopping once booted');
    }
  };
  const handleSignals = options.handleSignals ?? true;
  if (handleSignals) {
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
  const releaseSignals = () => {
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGINT', onSignal);
  };

  logger.info({ version: RUNNER_VERSION, embeddedDatabase: !config.databaseUrl }, 'starting');
  let database: Database;
  try {
    database = await openDatabase(config, logger, options.dataDir === undefined ? {} : { dataDir: options.dataDir });
  } catch (error) {
    releaseSignals();
    throw error;
  }
  let app: FastifyInstance;
  let address: string;
  try {
    const report = await migrate(database.sql, { logger });
    logger.info({ applied: report.applied.length, skipped: report.skipped.length }, 'migrations done');
    app = buildApp({ sql: database.sql, healthSql: database.healthSql, logger, clock, ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}) }, config);
    address = await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    releaseSignals();
    await database.close().catch(() => {});
    throw error;
  }
  logger.info({ address, dispatcher: config.tickEnabled ? 'on' : 'off', embeddedDatabase: database.embedded }, 'listening');

  let stopping: Promise<void> | undefined;
  const stopServer = () =>
    (stopping ??= (async () => {
      try {
        await app.close();
      } finally {
        await database.close();
        releaseSignals();
      }
    })());
  stop = stopServer;
  if (pendingSignal) shutdown(pendingSignal, stopServer);

  return { app, address, stop: stopServer };
}

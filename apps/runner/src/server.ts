import { type Clock, type Dispatcher, describeError, systemClock } from '@mana-ai/core';
import type { FastifyInstance } from 'fastify';
import type { Logger as PinoLogger } from 'pino';
import { buildApp, defaultInstanceId } from './app.js';
import { prepareDatabase } from './boot.js';
import type { RunnerConfig } from './config.js';
import { type Database, openDatabase } from './database.js';
import { createHttpTransport } from './http-transport.js';
import { createLogger } from './logger.js';
import { RUNNER_VERSION } from './version.js';

// Beyond the in-flight runs' bound, shutdown gets this long for HTTP, the pool and Postgres.
const SHUTDOWN_SLACK_MS = 20_000;

/**
 * A signal within this long of the first one is the same stop delivered twice (a process-group kill
 * under systemd or runuser, a terminal's Ctrl-C reaching a wrapper and the runner): ignored. Later,
 * a SIGINT (a human's second Ctrl-C) forces the exit; a repeated SIGTERM is always ignored.
 */
export const REPEATED_SIGNAL_WINDOW_MS = 1000;

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

/** Warnings about a configuration that works but should not stay as it is. */
function warnAboutConfig(config: RunnerConfig, logger: PinoLogger): void {
  if (config.llmApiKey === undefined || config.llmApiKey === config.serviceKey) {
    logger.warn({}, 'MANA_LLM_API_KEY is unset or equals MANA_SERVICE_KEY: the service key is sent to the LLM; give the LLM a key of its own');
  }
  if (config.previousServiceKey !== undefined) {
    logger.info({}, 'MANA_SERVICE_KEY_PREVIOUS is accepted on /internal/* (key rotation): unset it once every caller sends MANA_SERVICE_KEY');
  }
}

/**
 * Boots the runner: database (embedded when `DATABASE_URL` is unset; waited for at most
 * `MANA_AI_BOOT_TIMEOUT_MS`), migrations, app, listen. With `handleSignals`, SIGTERM/SIGINT stop it
 * gracefully and exit 0, also during boot; see {@link REPEATED_SIGNAL_WINDOW_MS} for repeated signals.
 */
export async function startServer(config: RunnerConfig, options: StartServerOptions = {}): Promise<RunningServer> {
  // One instance id for the lease owner and every log line.
  const settings: RunnerConfig = { ...config, instanceId: config.instanceId ?? defaultInstanceId() };
  const logger = options.logger ?? createLogger({ level: settings.logLevel, instanceId: settings.instanceId });
  const clock = options.clock ?? systemClock;
  const boot = new AbortController();
  let stop: (() => Promise<void>) | undefined;
  let received: { signal: NodeJS.Signals; at: number } | undefined;

  const shutdown = (signal: NodeJS.Signals, stopNow: () => Promise<void>) => {
    logger.info({ signal }, 'shutting down');
    const deadline = setTimeout(() => {
      logger.fatal({ timeoutMs: settings.shutdownTimeoutMs + SHUTDOWN_SLACK_MS }, 'shutdown took too long: exiting');
      process.exit(1);
    }, settings.shutdownTimeoutMs + SHUTDOWN_SLACK_MS);
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
  const onSignal = (signal: NodeJS.Signals) => {
    if (received) {
      if (signal === 'SIGINT' && performance.now() - received.at >= REPEATED_SIGNAL_WINDOW_MS) {
        logger.warn({ signal }, 'second SIGINT: exiting now');
        process.exit(1);
      }
      logger.info({ signal }, 'already shutting down: signal ignored');
      return;
    }
    received = { signal, at: performance.now() };
    if (stop) shutdown(signal, stop);
    else {
      // Boot stops at its next step; an embedded PostgreSQL being started is stopped once it runs.
      logger.info({ signal }, 'signal received while booting: stopping');
      boot.abort();
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

  logger.info({ version: RUNNER_VERSION, embeddedDatabase: !settings.databaseUrl }, 'starting');
  warnAboutConfig(settings, logger);
  let database: Database | undefined;
  let app: FastifyInstance | undefined;
  const http = createHttpTransport();
  let address: string;
  try {
    database = await openDatabase(settings, logger, options.dataDir === undefined ? {} : { dataDir: options.dataDir });
    const report = await prepareDatabase(database, { logger, timeoutMs: settings.bootTimeoutMs, signal: boot.signal });
    logger.info({ applied: report.applied.length, skipped: report.skipped.length }, 'migrations done');
    boot.signal.throwIfAborted();
    app = buildApp({ sql: database.sql, healthSql: database.healthSql, logger, clock, llmTransport: http.transport, ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}) }, settings);
    address = await app.listen({ port: settings.port, host: settings.host });
  } catch (error) {
    const opened = { app, database };
    const closeOpened = async () => {
      await opened.app?.close();
      await opened.database?.close();
      http.close();
      releaseSignals();
    };
    if (received && boot.signal.aborted && error === boot.signal.reason) {
      shutdown(received.signal, closeOpened);
      // The process exits from shutdown(); boot never completes.
      return new Promise<never>(() => {});
    }
    await closeOpened().catch(() => {});
    throw error;
  }
  const booted = { app, database };
  logger.info({ address, dispatcher: settings.tickEnabled ? 'on' : 'off', embeddedDatabase: booted.database.embedded }, 'listening');

  let stopping: Promise<void> | undefined;
  const stopServer = () =>
    (stopping ??= (async () => {
      try {
        await booted.app.close();
      } finally {
        await booted.database.close();
        http.close();
        releaseSignals();
      }
    })());
  stop = stopServer;
  if (received) shutdown(received.signal, stopServer);

  return { app: booted.app, address, stop: stopServer };
}

#!/usr/bin/env node
import { ManaAiError, isoNow, systemClock } from '@mana-ai/core';
import { pino } from 'pino';
import { buildApp, defaultInstanceId } from './app.js';
import { type PrepareDatabaseOptions, prepareDatabase } from './boot.js';
import { type RunnerConfig, loadConfig } from './config.js';
import { type Database, openDatabase } from './database.js';
import { ConfigError } from './errors.js';
import { createLogger } from './logger.js';
import type { MigrationReport } from './migrate.js';
import { startServer } from './server.js';
import { RUNNER_VERSION } from './version.js';

const USAGE = `mana-ai ${RUNNER_VERSION}: the mana-ai mission runner

Usage:
  mana-ai start          run the HTTP server and the mission dispatcher
  mana-ai migrate        apply database migrations and print the report (JSON)
  mana-ai tick --once    run one pass (refresh, claim, plan) without HTTP and print its TickStats (JSON)
  mana-ai --help         show this help
  mana-ai --version      print the version

Configuration comes from the environment (see the runner README). Without DATABASE_URL an
embedded PostgreSQL is started with its data in ./.mana-ai/pg.
`;

function fail(message: string): never {
  process.stderr.write(`mana-ai: ${message}\n`);
  process.exit(1);
}

function config(): RunnerConfig {
  try {
    const loaded = loadConfig();
    // One instance id for the lease owner and every log line.
    return { ...loaded, instanceId: loaded.instanceId ?? defaultInstanceId() };
  } catch (error) {
    if (ConfigError.isInstance(error) && error.code === 'RUNNER_CONFIG_INVALID') fail(error.message);
    throw error;
  }
}

/**
 * Opens the database and runs boot's database steps (bounded wait, `sync_changes` check,
 * migrations), then `run`. On SIGINT/SIGTERM the wait stops, and the pool and an embedded
 * PostgreSQL are still closed before the process exits 1.
 */
async function withDatabase<T>(
  settings: RunnerConfig,
  run: (database: Database, logger: pino.Logger, migrated: MigrationReport) => Promise<T>,
): Promise<T> {
  // stdout carries the command's JSON result; logs go to stderr.
  const logger = createLogger({ level: settings.logLevel, instanceId: settings.instanceId, destination: pino.destination(2) });
  let database: Database | undefined;
  const interrupted = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted.signal.aborted) return;
    interrupted.abort();
    logger.warn({ signal }, 'interrupted');
    if (database) void database.close().finally(() => process.exit(1));
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  try {
    database = await openDatabase(settings, logger);
    const options: PrepareDatabaseOptions = { logger, timeoutMs: settings.bootTimeoutMs, signal: interrupted.signal };
    try {
      const migrated = await prepareDatabase(database, options);
      return await run(database, logger, migrated);
    } finally {
      await database.close();
      if (interrupted.signal.aborted) process.exit(1);
    }
  } finally {
    process.removeListener('SIGINT', onSignal).removeListener('SIGTERM', onSignal);
  }
}

async function main(argv: readonly string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    if (command === undefined) process.exitCode = 1;
    return;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${RUNNER_VERSION}\n`);
    return;
  }
  const unexpected = rest.filter((arg) => !(command === 'tick' && arg === '--once'));
  if (unexpected.length > 0) fail(`unexpected argument ${JSON.stringify(unexpected[0])} for "${command}"\n\n${USAGE}`);

  switch (command) {
    case 'start': {
      await startServer(config());
      return;
    }
    case 'migrate': {
      const report = await withDatabase(config(), async (_database, _logger, migrated) => migrated);
      process.stdout.write(`${JSON.stringify(report)}\n`);
      return;
    }
    case 'tick': {
      if (!rest.includes('--once')) fail(`"tick" needs --once (the dispatcher runs inside "start")\n\n${USAGE}`);
      const settings = config();
      const stats = await withDatabase(settings, async (database, logger) => {
        // The same app as `start`, never listening and not dispatching on its own: one pass, then close.
        const app = buildApp({ sql: database.sql, logger, clock: systemClock }, { ...settings, tickEnabled: false });
        await app.ready();
        try {
          return await app.dispatcher.dispatcher.runPass();
        } finally {
          await app.close();
        }
      });
      process.stdout.write(`${JSON.stringify(stats)}\n`);
      return;
    }
    default:
      fail(`unknown command "${command}"\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  const message = error instanceof Error ? error.message : 'unknown error';
  const code = ManaAiError.isInstance(error) ? ` (${error.code})` : '';
  process.stderr.write(`mana-ai: ${isoNow(systemClock)} failed${code}: ${message}\n`);
  process.exit(1);
});

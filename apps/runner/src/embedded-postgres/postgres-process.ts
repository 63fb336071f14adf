import { type ChildProcess, spawn } from 'node:child_process';
import { type Logger, describeError } from '@mana-ai/core';
import { EmbeddedPostgresError } from '../errors.js';
import { type PostgresBinaries, programPath } from './binaries.js';
import type { SystemUser } from './system-user.js';

/** How PostgreSQL programs are run: which build, as whom, and where their output is logged. */
export interface PostgresProgramContext {
  binaries: PostgresBinaries;
  /** Run as this user (set when the runner is root). */
  user?: SystemUser;
  logger: Logger;
}

/** A running postmaster. */
export interface PostgresProcess {
  readonly pid: number;
  /** Fast shutdown; the first signal is sent synchronously (safe in an `exit` handler). Idempotent. */
  stop(): Promise<void>;
}

const READY_MESSAGE = 'database system is ready to accept connections';
const READY_TIMEOUT_MS = 60_000;
// Fast shutdown (SIGINT) first; then immediate shutdown (SIGQUIT); then SIGKILL.
const STOP_ESCALATION_MS = 10_000;
const OUTPUT_LINES_KEPT = 40;

/** The lines that explain a failure: errors first, else the last lines, without log prefixes. */
export function failureSummary(lines: readonly string[]): string {
  const clean = lines.map((line) => line.replace(/^\d{4}-\d\d-\d\d [\d:.]+ \S+ \[\d+\] /, '').replace(/\s+/g, ' ').trim()).filter(Boolean);
  const errors = clean.filter((line) => /^(FATAL|PANIC|ERROR|HINT):|error:|could not/i.test(line));
  const chosen = [...new Set(errors.length > 0 ? errors : clean)].slice(-4);
  return chosen.length > 0 ? chosen.join(' / ') : 'no output';
}

/** Spawns a program of the build as the context's user, logging each output line at debug. */
function spawnProgram(context: PostgresProgramContext, program: 'initdb' | 'postgres', args: string[]): { child: ChildProcess; output: string[] } {
  // A minimal environment: the server (run as another user when root) gets none of the runner's secrets.
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', LC_MESSAGES: 'C' };
  if (process.env.TZ) env.TZ = process.env.TZ;
  const child = spawn(programPath(context.binaries, program), args, {
    cwd: '/',
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(context.user ? { uid: context.user.uid, gid: context.user.gid } : {}),
  });
  // Failures are reported through the callers' own listeners; this one keeps a late `error` from crashing the process.
  child.on('error', () => {});
  const output: string[] = [];
  const collect = (stream: NodeJS.ReadableStream | null) => {
    let partial = '';
    stream?.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.trim()) continue;
        output.push(line);
        if (output.length > OUTPUT_LINES_KEPT) output.shift();
        context.logger.debug({ component: 'embedded-postgres', program, message: line.trim() }, 'postgres');
      }
    });
  };
  collect(child.stdout);
  collect(child.stderr);
  return { child, output };
}

function spawnFailure(program: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EACCES') return `could not run ${program}: permission denied`;
  return `could not run ${program} (${describeError(error)})`;
}

/** Runs `initdb` to completion: a new cluster in `dataDir`, superuser `postgres` with the password in `passwordFile`. */
export async function runInitdb(context: PostgresProgramContext, dataDir: string, passwordFile: string): Promise<void> {
  const args = [`--pgdata=${dataDir}`, '--auth=scram-sha-256', '--username=postgres', `--pwfile=${passwordFile}`, '--encoding=UTF8', '--no-locale'];
  const { child, output } = spawnProgram(context, 'initdb', args);
  await new Promise<void>((resolve, reject) => {
    child.once('error', (error) => reject(new EmbeddedPostgresError('initdb', spawnFailure('initdb', error), { cause: error })));
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new EmbeddedPostgresError('initdb', `initdb exited with ${signal ?? `code ${code}`}: ${failureSummary(output)}`));
    });
  });
}

/** Starts the postmaster on `dataDir` and resolves once it accepts connections. */
export async function startPostgres(context: PostgresProgramContext, dataDir: string, port: number, settings: readonly string[]): Promise<PostgresProcess> {
  const { child, output } = spawnProgram(context, 'postgres', ['-D', dataDir, '-p', String(port), ...settings]);
  // A child that could not be spawned emits `error` and possibly never `close`.
  const exited = new Promise<void>((resolve) => {
    child.once('close', () => resolve());
    child.once('error', () => child.pid === undefined && resolve());
  });
  const signal = (name: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(name);
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      signal('SIGQUIT');
      reject(new EmbeddedPostgresError('start', `PostgreSQL was not ready within ${READY_TIMEOUT_MS / 1000} s: ${failureSummary(output)}`));
    }, READY_TIMEOUT_MS);
    const onData = () => {
      if (output.some((line) => line.includes(READY_MESSAGE))) {
        clearTimeout(timer);
        child.stderr?.off('data', onData);
        resolve();
      }
    };
    child.stderr?.on('data', onData);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new EmbeddedPostgresError('start', spawnFailure('postgres', error), { cause: error }));
    });
    child.once('close', (code, exitSignal) => {
      clearTimeout(timer);
      const portTaken = output.some((line) => line.includes('Address already in use')) ? `port ${port} on 127.0.0.1 is already in use; ` : '';
      reject(new EmbeddedPostgresError('start', `${portTaken}PostgreSQL exited with ${exitSignal ?? `code ${code}`}: ${failureSummary(output)}`));
    });
  }).catch(async (error: unknown) => {
    signal('SIGQUIT');
    await exited;
    throw error;
  });

  let stopping: Promise<void> | undefined;
  const stop = () => {
    if (stopping) return stopping;
    signal('SIGINT');
    stopping = (async () => {
      const escalate = setTimeout(() => {
        signal('SIGQUIT');
        setTimeout(() => signal('SIGKILL'), STOP_ESCALATION_MS).unref();
      }, STOP_ESCALATION_MS);
      escalate.unref();
      await exited;
      clearTimeout(escalate);
    })();
    return stopping;
  };
  return { pid: child.pid ?? 0, stop };
}

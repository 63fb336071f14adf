import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const RUNNER_ROOT = fileURLToPath(new URL('..', import.meta.url));

/** A `mana-ai` CLI process started from the sources with tsx. */
export interface RunnerProcess {
  child: ChildProcess;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  /** SIGKILL if still alive. */
  kill(): void;
}

/** Fails early with a clear message when the workspace packages the runner imports are not built. */
export function assertWorkspaceBuilt(): void {
  for (const name of ['core', 'projection', 'resolvers', 'research']) {
    const entry = fileURLToPath(new URL(`../../../packages/${name}/dist/index.js`, import.meta.url));
    if (!existsSync(entry)) throw new Error(`packages/${name} is not built: run \`pnpm --filter "@mana-ai/runner^..." build\` first`);
  }
}

/** Variables a spawned runner must not inherit from the test process (it gets them from `env`). */
const CLEARED_VARIABLES = ['DATABASE_URL', 'SYNC_DATABASE_URL', 'NODE_ENV', 'PORT', 'MANA_SERVICE_KEY', 'LOG_LEVEL', 'NODE_OPTIONS'];

/**
 * Spawns `node <nodeArgs>` in apps/runner with `env` on top of a clean environment, collecting its
 * output: the base of {@link spawnRunner} (sources through tsx) and of the system suites' built runner.
 */
export function spawnNode(nodeArgs: string[], env: Record<string, string>): RunnerProcess {
  const base = { ...process.env };
  for (const name of CLEARED_VARIABLES) delete base[name];
  const child = spawn(process.execPath, nodeArgs, {
    cwd: RUNNER_ROOT,
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk) => {
    stdout += String(chunk);
  });
  child.stderr?.on('data', (chunk) => {
    stderr += String(chunk);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal, at: performance.now() }));
  });
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** Spawns `node --import tsx src/cli.ts <args>` in apps/runner with `env` on top of a clean environment. */
export function spawnRunner(args: string[], env: Record<string, string>): RunnerProcess {
  return spawnNode(['--import', 'tsx', 'src/cli.ts', ...args], env);
}

/** A TCP proxy in front of Postgres whose client-to-server traffic can be delayed on demand. */
export interface DelayProxy {
  port: number;
  /** Delay applied to every chunk sent to the database from now on (0 = none). */
  delayMs: number;
  close(): Promise<void>;
}

/** Starts a {@link DelayProxy} to `host:port` on a free loopback port. */
export async function startDelayProxy(host: string, port: number): Promise<DelayProxy> {
  const sockets = new Set<Socket>();
  const proxy: DelayProxy = { port: 0, delayMs: 0, close: async () => {} };
  const server: Server = createServer((client) => {
    const upstream = connect(port, host);
    sockets.add(client).add(upstream);
    let queue = Promise.resolve();
    client.on('data', (chunk) => {
      const delay = proxy.delayMs;
      queue = queue.then(async () => {
        if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
        if (!upstream.destroyed) upstream.write(chunk);
      });
    });
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  proxy.port = typeof address === 'object' && address ? address.port : 0;
  proxy.close = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  return proxy;
}

/** Polls `url` until it answers 200 or `timeoutMs` passes; throws with the process output on timeout. */
export async function waitForHealthy(url: string, runner: RunnerProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (runner.child.exitCode !== null) throw new Error(`runner exited early (${runner.child.exitCode}):\n${runner.stderr()}\n${runner.stdout()}`);
    const ok = await fetch(url, { signal: AbortSignal.timeout(1000) }).then(
      (response) => response.status === 200,
      () => false,
    );
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`runner not healthy after ${timeoutMs} ms:\n${runner.stderr()}\n${runner.stdout()}`);
}

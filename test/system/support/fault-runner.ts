import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { RunnerProcess } from '../../../apps/runner/test/spawn-runner.js';

const RUNNER_ROOT = fileURLToPath(new URL('../../../apps/runner/', import.meta.url));
const CLI = `${RUNNER_ROOT}dist/cli.js`;

/** Fails early with a clear message when the runner (and so the packages it bundles) is not built. */
export function assertRunnerBuilt(): void {
  if (!existsSync(CLI)) {
    throw new Error('apps/runner is not built: run `pnpm turbo run build --filter=@mana-ai/runner... --output-logs=errors-only` first');
  }
}

/** A free TCP port on the loopback interface. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port'))));
    });
  });
}

/** Spawns the built runner, `node dist/cli.js <args>`, with `env` on top of a cleaned environment. */
export function spawnBuiltRunner(args: string[], env: Record<string, string>): RunnerProcess {
  const base = { ...process.env };
  for (const name of ['DATABASE_URL', 'SYNC_DATABASE_URL', 'NODE_ENV', 'PORT', 'MANA_SERVICE_KEY', 'LOG_LEVEL', 'NODE_OPTIONS']) delete base[name];
  const child = spawn(process.execPath, [CLI, ...args], { cwd: RUNNER_ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
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

/** The value of an unlabelled (apart from `service`) gauge or counter in a Prometheus text page. */
export function metricValue(page: string, name: string): number | undefined {
  const line = page.split('\n').find((candidate) => candidate.startsWith(`${name}{`) || candidate.startsWith(`${name} `));
  if (!line) return undefined;
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** The sum of every series of `name` in a Prometheus text page (0 when absent). */
export function metricSum(page: string, name: string): number {
  return page
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

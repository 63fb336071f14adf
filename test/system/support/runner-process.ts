import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../../apps/runner/src/embedded-postgres.js';

export { freePort };

/** The built CLI the system suites start (`pnpm turbo run build --filter=@mana-ai/runner...` first). */
export const RUNNER_CLI = fileURLToPath(new URL('../../../apps/runner/dist/cli.js', import.meta.url));

/** A running `node apps/runner/dist/cli.js start` process. */
export interface BuiltRunner {
  child: ChildProcess;
  /** `http://127.0.0.1:<port>`. */
  baseUrl: string;
  /** Everything the process wrote so far. */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs` if still alive; resolves once it exited. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts the built runner with `env` on top of a cleaned environment (no inherited database,
 * port or key settings), listening on 127.0.0.1, and waits until `/health` answers 200.
 */
export async function startBuiltRunner(env: Record<string, string>, timeoutMs = 30_000): Promise<BuiltRunner> {
  if (!existsSync(RUNNER_CLI)) throw new Error(`${RUNNER_CLI} is missing: run \`pnpm turbo run build --filter=@mana-ai/runner...\` first`);
  const port = Number(env.PORT ?? (await freePort()));
  const base = { ...process.env };
  for (const name of Object.keys(base)) {
    if (/^(DATABASE_URL|SYNC_DATABASE_URL|PORT|HOST|NODE_ENV|LOG_LEVEL|TICK_|MANA_|OTEL_|POLICY_MODE|DEV_)/.test(name)) delete base[name];
  }
  const child = spawn(process.execPath, [RUNNER_CLI, 'start'], {
    env: { ...base, HOST: '127.0.0.1', ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += String(chunk);
  });
  child.stderr?.on('data', (chunk) => {
    output += String(chunk);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const runner: BuiltRunner = {
    child,
    baseUrl: `http://127.0.0.1:${port}`,
    output: () => output,
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`runner exited early (${child.exitCode}):\n${output}`);
    const healthy = await fetch(`${runner.baseUrl}/health`, { signal: AbortSignal.timeout(1000) }).then(
      (response) => response.status === 200,
      () => false,
    );
    if (healthy) return runner;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await runner.stop();
  throw new Error(`runner not healthy after ${timeoutMs} ms:\n${output}`);
}

/** The value of one Prometheus sample whose labels include `labels` (undefined when absent). */
export function metricValue(exposition: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
    const labelText = line[name.length] === '{' ? line.slice(name.length + 1, line.indexOf('}')) : '';
    const found = new Map([...labelText.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((match) => [match[1], match[2]]));
    if (Object.entries(labels).every(([key, value]) => found.get(key) === value)) {
      return Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return undefined;
}

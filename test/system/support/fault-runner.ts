import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type RunnerProcess, spawnNode } from '../../../apps/runner/test/spawn-runner.js';

const RUNNER_ROOT = fileURLToPath(new URL('../../../apps/runner/', import.meta.url));
const CLI = `${RUNNER_ROOT}dist/cli.js`;

/** Fails early with a clear message when the runner (and so the packages it bundles) is not built. */
export function assertRunnerBuilt(): void {
  if (!existsSync(CLI)) {
    throw new Error('apps/runner is not built: run `pnpm turbo run build --filter=@mana-ai/runner... --output-logs=errors-only` first');
  }
}

/** Spawns the built runner, `node dist/cli.js <args>`, with `env` on top of a cleaned environment. */
export function spawnBuiltRunner(args: string[], env: Record<string, string>): RunnerProcess {
  return spawnNode([CLI, ...args], env);
}

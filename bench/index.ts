/**
 * `pnpm bench` (after the build): runs every workspace package's `bench` script and the system
 * bench (bench/system.ts), one after the other, streaming their output, then prints one table of
 * the figures that have a target (DESIGN §5): figure | measured | target | ok/MISSED.
 *
 * Each bench prints a Markdown table `| figure | value | target | PASS/FAIL |`; rows with a target
 * are collected. A bench that exits non-zero or prints no such row is reported as MISSED.
 * `pnpm bench <name…>` runs only the benches whose name contains one of the given words (e.g.
 * `pnpm bench system`); the system bench's scenarios are listed in bench/system.ts.
 */
import { spawn } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** One bench to run: a display name, a command and the directory it runs in. */
interface BenchRun {
  name: string;
  command: string;
  args: string[];
  cwd: string;
  env?: Record<string, string>;
}

/** One row of the final table. */
interface Figure {
  figure: string;
  measured: string;
  target: string;
  ok: boolean;
}

async function packageBenches(): Promise<BenchRun[]> {
  const runs: BenchRun[] = [];
  for (const group of ['packages', 'apps', 'tooling']) {
    const directory = `${ROOT}${group}/`;
    const entries = await readdir(directory, { withFileTypes: true }).catch(() => []);
    for (const entry of entries.filter((candidate) => candidate.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
      const cwd = `${directory}${entry.name}`;
      const manifest = await readFile(`${cwd}/package.json`, 'utf8').then(
        (text) => JSON.parse(text) as { name?: string; scripts?: Record<string, string> },
        () => undefined,
      );
      if (manifest?.scripts?.bench) runs.push({ name: manifest.name ?? entry.name, command: 'pnpm', args: ['run', '--silent', 'bench'], cwd });
    }
  }
  return runs;
}

/** Runs `run`, echoing its output, and resolves with its stdout and exit code. */
function execute(run: BenchRun): Promise<{ stdout: string; code: number | null }> {
  return new Promise((resolve) => {
    const child = spawn(run.command, run.args, { cwd: run.cwd, env: { ...process.env, ...run.env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      process.stdout.write(chunk);
    });
    child.on('error', () => resolve({ stdout, code: -1 }));
    child.on('close', (code) => resolve({ stdout, code }));
  });
}

/** The rows with a target of the Markdown tables in `output`. */
export function parseFigures(output: string, prefix: string): Figure[] {
  const figures: Figure[] = [];
  for (const line of output.split('\n')) {
    const trimmed = line.trim();
    if (!trimmed.startsWith('|') || !trimmed.endsWith('|')) continue;
    const cells = trimmed
      .slice(1, -1)
      .split('|')
      .map((cell) => cell.trim());
    if (cells.length < 4 || /^-+$/.test(cells[0] ?? '') || cells[0] === 'figure') continue;
    const [figure, measured, target, verdict] = cells as [string, string, string, string];
    if (target === '') continue;
    figures.push({ figure: `${prefix}: ${figure}`, measured, target, ok: verdict.toUpperCase() === 'PASS' });
  }
  return figures;
}

function printTable(figures: readonly Figure[]): void {
  const header = ['figure', 'measured', 'target (DESIGN.md §5)', 'ok/MISSED'];
  const rows = figures.map((figure) => [figure.figure, figure.measured, figure.target, figure.ok ? 'ok' : 'MISSED']);
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]) => `| ${cells.map((cell, column) => cell.padEnd(widths[column]!)).join(' | ')} |`;
  process.stdout.write(`\n${line(header)}\n|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|\n`);
  for (const row of rows) process.stdout.write(`${line(row)}\n`);
}

async function main(): Promise<void> {
  const started = performance.now();
  const runs: BenchRun[] = [
    ...(await packageBenches()),
    {
      name: 'system',
      command: process.execPath,
      args: ['--import', 'tsx', 'bench/system.ts'],
      cwd: ROOT,
      // No source paths: the runner and packages run from their builds, as in production.
      env: { TSX_TSCONFIG_PATH: 'bench/tsconfig.json' },
    },
  ];
  const only = process.argv.slice(2);
  const selected = only.length === 0 ? runs : runs.filter((run) => only.some((word) => run.name.includes(word)));
  const figures: Figure[] = [];
  let failed = 0;
  for (const run of selected) {
    process.stdout.write(`\n=== ${run.name} bench ===\n`);
    const { stdout, code } = await execute(run);
    const found = parseFigures(stdout, run.name.replace(/^@mana-ai\//, ''));
    if (code !== 0 || found.length === 0) {
      failed++;
      figures.push({ figure: `${run.name}: bench run`, measured: code === 0 ? 'no figures printed' : `failed (exit ${code})`, target: 'runs', ok: false });
    }
    figures.push(...found);
  }
  printTable(figures);
  const missed = figures.filter((figure) => !figure.ok).length;
  process.stdout.write(`\n${figures.length - missed} ok, ${missed} missed; total ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  if (failed > 0) process.exitCode = 1;
}

await main();

#!/usr/bin/env node
// Lints what npm would publish for every public package: publint on the packed tarball and
// arethetypeswrong (esm-only profile) on the same tarball; then installs the tarballs into fresh
// consumer projects, imports every entry point in Node and type-checks them for a Node-only and
// a DOM-only consumer (consumers.mjs). Works offline: the tarball is built locally with
// `pnpm pack`, attw never resolves an @types package from the registry, and the consumers take
// third-party dependencies from the workspace install.
// Expects the packages to be built (`pnpm check:packages` builds them first).
// Usage: check-packages.mjs [package directories]
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { publint } from 'publint';
import { checkConsumers } from './consumers.mjs';
import { formatMessage } from 'publint/utils';

const run = promisify(execFile);
const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');

// The packages we publish, in dependency order. Package directories as arguments replace the list,
// which is how the repository test proves that a broken package fails the check.
const PUBLISHED_PACKAGES = ['core', 'projection', 'crypto', 'resolvers', 'planner', 'research'];
const dirArgs = process.argv.slice(2);
const packageDirs =
  dirArgs.length > 0 ? dirArgs.map((dir) => resolve(dir)) : PUBLISHED_PACKAGES.map((name) => join(root, 'packages', name));

// The esm-only profile of the attw CLI: CommonJS resolutions are out of scope for ESM-only packages.
const IGNORED_RESOLUTIONS = new Set(['node10', 'node16-cjs']);

async function loadAttw() {
  // @arethetypeswrong/core is a dependency of the CLI we pin, not of the workspace root.
  const requireFromRoot = createRequire(join(root, 'package.json'));
  const cliManifest = requireFromRoot.resolve('@arethetypeswrong/cli/package.json');
  const requireFromCli = createRequire(cliManifest);
  const core = await import(pathToFileURL(requireFromCli.resolve('@arethetypeswrong/core')).href);
  return core;
}

async function pack(packageDir, destination) {
  const { stdout } = await run('pnpm', ['pack', '--json', '--pack-destination', destination], {
    cwd: packageDir,
    maxBuffer: 16 * 1024 * 1024,
  });
  const start = stdout.indexOf('{');
  const info = JSON.parse(stdout.slice(start));
  return info.filename;
}

function describeAttwProblem(problem) {
  const where = [
    problem.entrypoint,
    problem.resolutionKind,
    problem.fileName,
    problem.typesFileName,
    problem.implementationFileName,
  ]
    .filter((part) => part !== undefined)
    .join(' ');
  return `attw ${problem.kind}${where ? ` (${where})` : ''}`;
}

async function checkPackage(packageDir, index, attw, scratch) {
  const problems = [];
  const tarballPath = await pack(packageDir, join(scratch, String(index)));
  const tarball = await readFile(tarballPath);

  // Without pkgDir publint lints the tarball's own root, i.e. exactly what npm would publish.
  const lint = await publint({
    level: 'warning',
    strict: true,
    pack: { tarball: tarball.buffer.slice(tarball.byteOffset, tarball.byteOffset + tarball.byteLength) },
  });
  for (const message of lint.messages) {
    if (message.type === 'suggestion') continue;
    problems.push(`publint ${message.code}: ${formatMessage(message, lint.pkg, { color: false })}`);
  }

  const attwPackage = attw.createPackageFromTarballData(new Uint8Array(tarball));
  const analysis = await attw.checkPackage(attwPackage);
  if (analysis.types === false) {
    problems.push('attw: the package ships no types');
  } else {
    for (const problem of analysis.problems) {
      if ('resolutionKind' in problem && IGNORED_RESOLUTIONS.has(problem.resolutionKind)) continue;
      problems.push(describeAttwProblem(problem));
    }
    const entrypoints = Object.keys(analysis.entrypoints);
    if (entrypoints.length === 0) problems.push('attw: no entrypoints found');
  }
  const manifest = JSON.parse(await readFile(join(packageDir, 'package.json'), 'utf8'));
  // `changeset version` writes CHANGELOG.md next to package.json; `files` must publish it.
  if (manifest.files?.includes('CHANGELOG.md') !== true) problems.push('files: CHANGELOG.md is not published');
  return { index, name: manifest.name, problems, entrypoints: Object.keys(manifest.exports ?? {}), tarball: tarballPath, manifest, dir: packageDir };
}

async function main() {
  // Both tools can fetch from the registry in other modes; make sure this check never does.
  globalThis.fetch = async (input) => {
    throw new Error(`check-packages works offline, refused to fetch ${String(input)}`);
  };
  const started = performance.now();
  const attw = await loadAttw();
  const scratch = await mkdtemp(join(tmpdir(), 'mana-ai-check-packages-'));
  try {
    // Packing spawns pnpm; two at a time keeps a 2-core machine responsive.
    const results = [];
    const queue = packageDirs.map((dir, index) => ({ dir, index }));
    const workers = Array.from({ length: 2 }, async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        results.push(await checkPackage(next.dir, next.index, attw, scratch));
      }
    });
    await Promise.all(workers);
    results.sort((a, b) => a.index - b.index);
    let failed = 0;
    for (const result of results) {
      if (result.problems.length === 0) {
        console.log(`ok    ${result.name} (publint, attw esm-only: ${result.entrypoints.join(' ')})`);
      } else {
        failed += 1;
        console.log(`FAIL  ${result.name}: ${result.problems.length} problem(s)`);
        for (const problem of result.problems) console.log(`      - ${problem}`);
      }
    }
    const consumers = await checkConsumers({
      root,
      scratch,
      packages: results.map((result) => ({ tarball: result.tarball, manifest: result.manifest, sourceDir: result.dir })),
    });
    if (consumers.problems.length === 0) {
      console.log(`ok    consumers (Node import + types: ${consumers.specifiers.length} entry points; DOM types: ${consumers.browserEntryPoints.length} entry points, all but ./fastify)`);
    } else {
      console.log(`FAIL  consumers: ${consumers.problems.length} problem(s)`);
      for (const problem of consumers.problems) console.log(`      - ${problem}`);
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    console.log(`${results.length - failed}/${results.length} packages clean in ${seconds}s`);
    if (failed > 0 || consumers.problems.length > 0) process.exitCode = 1;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

await main();

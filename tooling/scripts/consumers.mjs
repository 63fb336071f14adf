// Installs packed tarballs into two fresh consumer projects and checks them the way users would:
// a Node service (lib ES2023 + @types/node, no DOM) imports and type-checks every entry point; a
// webapp (lib ES2023 + DOM, no Node types) type-checks every entry point but the Fastify plugins
// (`./fastify`: they need the optional peer fastify, a Node HTTP server whose own types need
// @types/node). Neither uses skipLibCheck. Offline: each tarball's third-party dependencies come from the workspace install
// (what pnpm resolved for that package), linked for the Node consumer and copied for the webapp so
// that TypeScript cannot find the workspace's @types/node above a linked package.
import { execFile } from 'node:child_process';
import { cp, mkdir, readFile, realpath, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The `exports` key of the Fastify plugins: Node servers only, left out of the DOM-only consumer. */
export const FASTIFY_ENTRY = './fastify';

/** The directory of `dependency` as Node would resolve it from `fromDir` (no `exports` lookup). */
async function resolvePackageDir(dependency, fromDir) {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', dependency);
    if (existsSync(join(candidate, 'package.json'))) return realpath(candidate);
    if (dir === dirname(dir)) throw new Error(`cannot resolve ${dependency} from ${fromDir}`);
  }
}

async function readManifest(dir) {
  return JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
}

/**
 * Puts `dependency` (found from `fromDir`) into `project/node_modules`: a symlink, or with `copy` a
 * copy of it and, transitively, of its own dependencies and required peers.
 */
async function install(project, dependency, fromDir, { copy, done }) {
  if (done.has(dependency)) return;
  done.add(dependency);
  const source = await resolvePackageDir(dependency, fromDir);
  const target = join(project, 'node_modules', dependency);
  await mkdir(dirname(target), { recursive: true });
  if (!copy) {
    await symlink(source, target, 'dir');
    return;
  }
  await cp(source, target, { recursive: true, dereference: true, filter: (path) => !path.slice(source.length).includes('/node_modules/') });
  const manifest = await readManifest(source);
  for (const next of requiredDependencies(manifest)) await install(project, next, source, { copy, done });
}

function requiredDependencies(manifest) {
  const optional = manifest.peerDependenciesMeta ?? {};
  return Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies }).filter((name) => !optional[name]?.optional);
}

/**
 * A consumer project with the tarballs unpacked into node_modules and their third-party
 * dependencies installed; `optionalPeers` also installs optional peers (fastify for `./fastify`).
 */
async function createProject(dir, packages, { copy, optionalPeers, extra = [] }) {
  await mkdir(join(dir, 'node_modules'), { recursive: true });
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  const done = new Set();
  for (const { tarball, manifest, sourceDir } of packages) {
    const target = join(dir, 'node_modules', manifest.name);
    await mkdir(target, { recursive: true });
    await run('tar', ['-xzf', tarball, '-C', target, '--strip-components=1']);
    const needed = optionalPeers ? Object.keys({ ...manifest.dependencies, ...manifest.peerDependencies }) : requiredDependencies(manifest);
    for (const dependency of needed) {
      // Our own packages come from their tarballs, never from the workspace.
      if (!packages.some((other) => other.manifest.name === dependency)) await install(dir, dependency, sourceDir, { copy, done });
    }
  }
  for (const { name, from } of extra) await install(dir, name, from, { copy, done });
}

async function typeCheck(dir, specifiers, compilerOptions, tsc) {
  const source = specifiers.map((specifier, index) => `export * as entry${index} from '${specifier}';\n`).join('');
  await writeFile(join(dir, 'consumer.ts'), source);
  const options = { strict: true, noEmit: true, target: 'ES2022', skipLibCheck: false, ...compilerOptions };
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: options, files: ['consumer.ts'] }));
  try {
    await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: dir, maxBuffer: 16 * 1024 * 1024 });
    return [];
  } catch (error) {
    const lines = String(error.stdout ?? error.message).split('\n').filter((line) => line.includes('error TS'));
    return lines.length > 0 ? lines : [String(error.stderr || error.message).trim()];
  }
}

async function importEach(dir, specifiers) {
  const script = `for (const s of ${JSON.stringify(specifiers)}) { try { await import(s); } catch (e) { console.log(s + ': ' + e.message); } }`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: dir });
  return stdout.split('\n').filter(Boolean);
}

/**
 * Checks the packed packages as consumers see them. `packages`: `{ tarball, manifest, sourceDir }`
 * (sourceDir: the workspace package the tarball was packed from). Returns the problems found, the
 * specifiers checked and those of them the webapp consumer type-checked (all but `./fastify`).
 */
export async function checkConsumers({ root, scratch, packages }) {
  const tsc = join(await resolvePackageDir('typescript', root), 'bin/tsc');
  const entries = packages.flatMap(({ manifest }) =>
    Object.keys(manifest.exports ?? { '.': null }).map((key) => ({
      key,
      specifier: key === '.' ? manifest.name : `${manifest.name}/${key.slice(2)}`,
    })),
  );
  const specifiers = entries.map((entry) => entry.specifier);
  const browserEntryPoints = entries.filter((entry) => entry.key !== FASTIFY_ENTRY).map((entry) => entry.specifier);
  const node = join(scratch, 'consumer-node');
  const browser = join(scratch, 'consumer-browser');
  await createProject(node, packages, { copy: false, optionalPeers: true, extra: [{ name: '@types/node', from: root }] });
  await createProject(browser, packages, { copy: true, optionalPeers: false });
  const nodeOptions = { lib: ['ES2023'], types: ['node'], module: 'NodeNext', moduleResolution: 'NodeNext' };
  const browserOptions = { lib: ['ES2023', 'DOM', 'DOM.Iterable'], types: [], module: 'ESNext', moduleResolution: 'Bundler' };
  const [imports, nodeTypes, browserTypes] = await Promise.all([
    importEach(node, specifiers),
    typeCheck(node, specifiers, nodeOptions, tsc),
    typeCheck(browser, browserEntryPoints, browserOptions, tsc),
  ]);
  const problems = [];
  const report = (kind, lines) => {
    for (const line of lines) problems.push(`${kind}: ${line.replaceAll(`${scratch}/`, '')}`);
  };
  report('node import', imports);
  report('Node-only consumer (lib ES2023 + @types/node)', nodeTypes);
  report('DOM-only consumer (lib ES2023 + DOM)', browserTypes);
  return { problems, specifiers, browserEntryPoints };
}

import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));

/** The published packages and the error-code prefix of each. */
const PACKAGES = {
  core: 'CORE_',
  projection: 'PROJECTION_',
  crypto: 'CRYPTO_',
  resolvers: 'RESOLVERS_',
  planner: 'PLANNER_',
  research: 'RESEARCH_',
} as const;

type PackageName = keyof typeof PACKAGES;

interface Manifest {
  name: string;
  version: string;
  description?: string;
  license?: string;
  keywords?: string[];
  type?: string;
  sideEffects?: boolean;
  files?: string[];
  engines?: Record<string, string>;
  repository?: { type?: string; url?: string; directory?: string };
  exports?: Record<string, unknown>;
  main?: string;
  module?: string;
  types?: string;
  publishConfig?: { access?: string };
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  devDependencies?: Record<string, string>;
}

const names = Object.keys(PACKAGES) as PackageName[];

function packageDir(name: PackageName): string {
  return join(root, 'packages', name);
}

function manifest(name: PackageName): Manifest {
  return JSON.parse(readFileSync(join(packageDir(name), 'package.json'), 'utf8')) as Manifest;
}

function readme(name: PackageName): string {
  return readFileSync(join(packageDir(name), 'README.md'), 'utf8');
}

/** Source files that ship (tests excluded), read as text. */
function shippedSources(dir: string): string[] {
  const texts: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) texts.push(...shippedSources(path));
    else if (entry.name.endsWith('.ts') && !entry.name.includes('.test.')) texts.push(readFileSync(path, 'utf8'));
  }
  return texts;
}

/** The string literals of the package's `…ErrorCode` union in src/errors.ts. */
function errorCodes(name: PackageName): string[] {
  const source = readFileSync(join(packageDir(name), 'src/errors.ts'), 'utf8');
  const union = /export type \w+ErrorCode\s*=([^;]+);/.exec(source);
  if (!union?.[1]) throw new Error(`no ErrorCode union in packages/${name}/src/errors.ts`);
  return [...union[1].matchAll(/'([^']+)'/g)].map((match) => match[1]!);
}

/** The `## …` headings of a README. */
function sections(text: string): string[] {
  return [...text.matchAll(/^## (.+)$/gm)].map((match) => match[1]!.trim());
}

/** Entry points a package may export; `./merge` is projection's browser-safe LWW merge. */
const entryPoints = { '.': 'index', './fastify': 'fastify/index', './testing': 'testing/index', './merge': 'merge' } as const;

describe('published package manifests', () => {
  it.each(names)('%s has the house fields when it is published', (name) => {
    const pkg = manifest(name);
    expect(pkg.name).toBe(`@mana-ai/${name}`);
    expect(pkg.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(pkg.description?.length).toBeGreaterThan(20);
    expect(pkg.license).toBe('MIT');
    expect(pkg.keywords).toEqual(expect.arrayContaining(['mana-ai']));
    expect(pkg.type).toBe('module');
    expect(pkg.sideEffects).toBe(false);
    expect(pkg.files).toEqual(['dist', 'CHANGELOG.md']);
    expect(pkg.engines).toEqual({ node: '>=20.19' });
    expect(pkg.repository?.type).toBe('git');
    expect(pkg.repository?.url).toMatch(/^git\+https:\/\//);
    expect(pkg.repository?.directory).toBe(`packages/${name}`);
    expect(pkg.publishConfig?.access).toBe('public');
    // ESM only through `exports`: no legacy entry fields that could disagree with it.
    expect(pkg.main).toBeUndefined();
    expect(pkg.module).toBeUndefined();
    expect(pkg.types).toBeUndefined();
  });

  it.each(names)('%s exports ".", "./fastify" and optionally "./testing" with types first', (name) => {
    const pkg = manifest(name);
    const exported = Object.keys(pkg.exports ?? {});
    expect(exported.slice(0, 2)).toEqual(['.', './fastify']);
    expect(exported.filter((key) => !(key in entryPoints))).toEqual([]);
    for (const key of exported) {
      const base = entryPoints[key as keyof typeof entryPoints];
      const conditions = pkg.exports?.[key] as Record<string, string>;
      expect(Object.keys(conditions), key).toEqual(['types', 'default']);
      expect(conditions.types).toBe(`./dist/${base}.d.ts`);
      expect(conditions.default).toBe(`./dist/${base}.js`);
      expect(existsSync(join(packageDir(name), 'src', `${base}.ts`)), `src/${base}.ts`).toBe(true);
    }
    // An entry point in src that is not exported would be unreachable for consumers.
    expect(exported).toContain('.');
    if (existsSync(join(packageDir(name), 'src/testing/index.ts'))) expect(exported).toContain('./testing');
  });

  it.each(names)('%s depends on @mana-ai/core only among our packages when it is installed', (name) => {
    const pkg = manifest(name);
    const runtime = { ...pkg.dependencies, ...pkg.peerDependencies };
    const internal = Object.keys(runtime).filter((dep) => dep.startsWith('@mana-ai/'));
    expect(internal).toEqual(name === 'core' ? [] : ['@mana-ai/core']);
    for (const dep of internal) expect(runtime[dep], dep).toBe('workspace:^');
    // Siblings may only appear as devDependencies (tests), through the workspace protocol.
    for (const [dep, range] of Object.entries(pkg.devDependencies ?? {})) {
      if (dep.startsWith('@mana-ai/')) expect(range, dep).toMatch(/^workspace:/);
    }
  });

  it.each(names)('%s takes fastify as an optional peer when it ships a Fastify plugin', (name) => {
    const pkg = manifest(name);
    expect(pkg.dependencies?.fastify).toBeUndefined();
    expect(pkg.peerDependencies?.fastify).toBe('^5.0.0');
    expect(pkg.peerDependenciesMeta?.fastify?.optional).toBe(true);
    expect(pkg.devDependencies?.fastify).toBeDefined();
    // Only the ./fastify entry point uses fastify-plugin: browser and plain Node users never install it.
    expect(pkg.dependencies?.['fastify-plugin']).toBeUndefined();
    expect(pkg.peerDependencies?.['fastify-plugin']).toBe('^6.0.0');
    expect(pkg.peerDependenciesMeta?.['fastify-plugin']?.optional).toBe(true);
  });

  it.each(names)('%s asks for caret ranges, never exact versions, of what it needs at run time', (name) => {
    const pkg = manifest(name);
    for (const [dep, range] of Object.entries({ ...pkg.dependencies, ...pkg.peerDependencies })) {
      expect(range, dep).toMatch(/^(\^|workspace:\^)/);
    }
  });

  it.each(names)('%s takes postgres as an optional peer exactly when its code takes an SqlClient', (name) => {
    const pkg = manifest(name);
    const sources = shippedSources(join(packageDir(name), 'src'));
    // The types are structural (core's SqlClient): no shipped file imports the driver.
    expect(sources.filter((text) => /from 'postgres'/.test(text))).toEqual([]);
    const takesSql = sources.some((text) => /\bSqlClient\b/.test(text));
    expect(pkg.dependencies?.postgres).toBeUndefined();
    if (takesSql && name !== 'core') {
      // The driver the package is tested with; optional, so that a webapp importing a browser-safe
      // entry point does not install it.
      expect(pkg.peerDependencies?.postgres).toMatch(/^\^3\./);
      expect(pkg.peerDependenciesMeta?.postgres?.optional).toBe(true);
    } else {
      expect(pkg.peerDependencies?.postgres).toBeUndefined();
    }
  });
});

describe('package READMEs', () => {
  it.each(names)('%s README has purpose, install, usage, Fastify plugin, options and error codes', (name) => {
    const text = readme(name);
    expect(text.startsWith(`# @mana-ai/${name}\n`)).toBe(true);
    // The purpose: prose between the title and the first section.
    const intro = text.slice(text.indexOf('\n'), text.indexOf('\n## ')).trim();
    expect(intro.length).toBeGreaterThan(80);
    const headings = sections(text);
    for (const pattern of [/^Install\b/, /^Usage\b/, /^(The )?Fastify plugin\b/, /^Options\b/, /^Error codes\b/]) {
      expect(
        headings.some((heading) => pattern.test(heading)),
        `${pattern} in ${headings.join(' | ')}`,
      ).toBe(true);
    }
    expect(text).toContain(`pnpm add @mana-ai/${name}`);
  });

  it.each(names)('%s README lists every code of its error union and no other', (name) => {
    const codes = errorCodes(name);
    const prefix = PACKAGES[name];
    expect(codes.length).toBeGreaterThan(0);
    for (const code of codes) expect(code.startsWith(prefix), code).toBe(true);
    const text = readme(name);
    const start = text.search(/^## Error codes/m);
    const end = text.indexOf('\n## ', start + 1);
    const errorSection = text.slice(start, end === -1 ? undefined : end);
    for (const code of codes) expect(errorSection, code).toContain(`\`${code}\``);
    const documented = new Set(
      [...errorSection.matchAll(new RegExp(`\\b${prefix}[A-Z0-9_]+\\b`, 'g'))].map((match) => match[0]),
    );
    expect([...documented].filter((code) => !codes.includes(code))).toEqual([]);
  });

  it.each(names)('%s README names every runtime export of each entry point', async (name) => {
    const text = readme(name);
    const exported = Object.keys(manifest(name).exports ?? {});
    for (const key of exported) {
      const specifier = key === '.' ? `@mana-ai/${name}` : `@mana-ai/${name}/${key.slice(2)}`;
      const module = (await import(/* @vite-ignore */ specifier)) as Record<string, unknown>;
      const missing = Object.keys(module).filter(
        (symbol) => symbol !== 'default' && !new RegExp(`\\b${symbol}\\b`).test(text),
      );
      expect(missing, `${specifier} exports missing from README.md`).toEqual([]);
    }
  });
});

describe('the postgres.js patch (reconnect after an outage)', () => {
  const rootManifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    pnpm?: { patchedDependencies?: Record<string, string> };
  };
  const patched = Object.entries(rootManifest.pnpm?.patchedDependencies ?? {}).filter(([key]) => key.startsWith('postgres@'));

  it.each(['projection', 'resolvers', 'research'] as const)(
    '%s README tells a consumer the exact version, patch file and declaration the runner uses',
    (name) => {
      expect(patched).toHaveLength(1);
      const [key, path] = patched[0]!;
      const version = key.slice('postgres@'.length);
      expect(existsSync(join(root, path))).toBe(true);
      // The package is tested with the version the patch is for.
      expect(manifest(name).devDependencies?.postgres).toBe(version);
      const text = readme(name);
      expect(text).toContain(`\`${key}\``);
      expect(text).toContain(`\`${path}\``);
      expect(text).toContain(`"patchedDependencies": { "${key}": "${path}" }`);
      expect(text).toContain('`connect_timeout: 10`');
    },
  );
});

describe('CONTRIBUTING.md', () => {
  const contributing = readFileSync(join(root, 'CONTRIBUTING.md'), 'utf8');
  const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> })
    .scripts;

  it('names only root scripts or pnpm commands when it shows a pnpm command', () => {
    const builtins = new Set(['install', 'add', 'vitest', 'biome', 'turbo', 'exec', 'publish', 'pack']);
    const used = [...contributing.matchAll(/\bpnpm ([a-z][\w:-]*)/g)].map((match) => match[1]!);
    expect(used).toEqual(expect.arrayContaining(['test', 'changeset', 'check:packages', 'version-packages', 'release']));
    expect(used.filter((name) => !(name in scripts) && !builtins.has(name))).toEqual([]);
  });

  it('describes what CI runs when the root test script runs the package checks', () => {
    expect(scripts.test).toContain('node tooling/scripts/check-packages.mjs');
    expect(scripts['check:packages']).toContain('node tooling/scripts/check-packages.mjs');
    expect(scripts['version-packages']).toBe('changeset version');
    expect(scripts.release).toContain('changeset publish');
    for (const step of ['turbo run build typecheck', 'tsc -p tsconfig.json', 'biome check .', 'check-packages.mjs', 'vitest run']) {
      expect(scripts.test).toContain(step);
      expect(contributing).toContain(step);
    }
  });
});

describe('check-packages script', () => {
  it('fails and lists every problem when a package puts default before types and exports a missing file', async () => {
    const scratch = await mkdtemp(join(tmpdir(), 'mana-ai-bad-package-'));
    try {
      await mkdir(join(scratch, 'dist'));
      await writeFile(
        join(scratch, 'package.json'),
        JSON.stringify({
          name: 'bad-package',
          version: '1.0.0',
          type: 'module',
          files: ['dist'],
          exports: {
            '.': { default: './dist/index.js', types: './dist/index.d.ts' },
            './gone': { types: './dist/gone.d.ts', default: './dist/gone.js' },
          },
        }),
      );
      await writeFile(join(scratch, 'dist/index.js'), 'export const answer = 42;\n');
      await writeFile(join(scratch, 'dist/index.d.ts'), 'export declare const answer: number;\n');
      const failure = await run(process.execPath, [join(root, 'tooling/scripts/check-packages.mjs'), scratch], {
        cwd: root,
        timeout: 170_000,
      }).then(
        () => null,
        (error: { code?: number; stdout?: string }) => error,
      );
      expect(failure?.code).toBe(1);
      expect(failure?.stdout).toContain('FAIL  bad-package');
      expect(failure?.stdout).toContain('publint EXPORTS_TYPES_SHOULD_BE_FIRST');
      expect(failure?.stdout).toContain('publint FILE_DOES_NOT_EXIST');
      expect(failure?.stdout).toContain('attw NoResolution (./gone');
      expect(failure?.stdout).toContain('0/1 packages clean');
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }, 180_000);

  it('fails when a packed package does not import or type-check for a Node-only or a DOM-only consumer', async () => {
    const scratch = await mkdtemp(join(tmpdir(), 'mana-ai-bad-consumers-'));
    const write = async (name: string, js: string, dts: string) => {
      await mkdir(join(scratch, name, 'dist'), { recursive: true });
      await writeFile(
        join(scratch, name, 'package.json'),
        JSON.stringify({
          name,
          version: '1.0.0',
          type: 'module',
          files: ['dist', 'CHANGELOG.md'],
          exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' } },
        }),
      );
      await writeFile(join(scratch, name, 'dist/index.js'), js);
      await writeFile(join(scratch, name, 'dist/index.d.ts'), dts);
    };
    try {
      // WebCrypto's CryptoKey is a DOM-lib name: a Node service without DOM cannot compile it.
      await write('dom-types', "import 'not-a-declared-dependency';\nexport const seal = () => {};\n", 'export declare function seal(key: CryptoKey): void;\n');
      // An entry point (not a Fastify plugin, so the webapp checks it too) whose types need Node's.
      await write('node-types', 'export const source = null;\n', "import type { Readable } from 'node:stream';\nexport declare const source: Readable | null;\n");
      const failure = await run(
        process.execPath,
        [join(root, 'tooling/scripts/check-packages.mjs'), join(scratch, 'dom-types'), join(scratch, 'node-types')],
        { cwd: root, timeout: 170_000 },
      ).then(
        () => null,
        (error: { code?: number; stdout?: string }) => error,
      );
      expect(failure?.code).toBe(1);
      expect(failure?.stdout).toContain('FAIL  consumers: 3 problem(s)');
      expect(failure?.stdout).toMatch(/node import: dom-types: Cannot find package 'not-a-declared-dependency'/);
      expect(failure?.stdout).toMatch(
        /Node-only consumer \(lib ES2023 \+ @types\/node\): .*node_modules\/dom-types\/dist\/index\.d\.ts.*Cannot find name 'CryptoKey'/,
      );
      expect(failure?.stdout).toMatch(
        /DOM-only consumer \(lib ES2023 \+ DOM\): .*node_modules\/node-types\/dist\/index\.d\.ts.*Cannot find module 'node:stream'/,
      );
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }, 180_000);
});

import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** The published packages whose READMEs hold the checked blocks. */
export const README_PACKAGES = ['core', 'projection', 'crypto', 'resolvers', 'planner', 'research'] as const;

/**
 * How a README block is checked (CONTRIBUTING.md, "Code blocks in READMEs"): ```ts is compiled,
 * ```ts run also runs to completion, ```ts service also runs as a service until it planned a mission.
 */
export type BlockMode = 'compile' | 'run' | 'service';

const MODES: Record<string, BlockMode> = { '': 'compile', run: 'run', service: 'service' };

/** One TypeScript block of a package README. */
export interface ReadmeBlock {
  /** `<package>-<n>`: the file name of the block in the scratch project. */
  readonly name: string;
  /** The README, relative to the repository root. */
  readonly readme: string;
  /** 1-based line of the block's first code line in the README. */
  readonly line: number;
  readonly mode: BlockMode;
  readonly code: string;
}

/**
 * Every fenced ```ts block of the package READMEs, with its {@link BlockMode}. Any other word after
 * `ts` is an error, so a typo never silently turns a block's check off.
 */
export function readmeBlocks(): ReadmeBlock[] {
  const blocks: ReadmeBlock[] = [];
  for (const name of README_PACKAGES) {
    const readme = `packages/${name}/README.md`;
    const lines = readFileSync(join(root, readme), 'utf8').split('\n');
    let open: { info: string; start: number; code: string[] } | undefined;
    lines.forEach((text, index) => {
      if (open) {
        if (text.startsWith('```')) {
          const mode = MODES[open.info.split(/\s+/).slice(1).join(' ')];
          if (!mode) throw new Error(`${readme}:${open.start}: unknown block mode \`${open.info}\` (ts, ts run or ts service)`);
          blocks.push({
            name: `${name}-${blocks.filter((block) => block.readme === readme).length + 1}`,
            readme,
            line: open.start,
            mode,
            code: open.code.join('\n'),
          });
          open = undefined;
        } else {
          open.code.push(text);
        }
      } else if (/^```(ts|typescript)\b/.test(text)) {
        open = { info: text.slice(3).trim(), start: index + 2, code: [] };
      }
    });
  }
  return blocks;
}

/** A scratch project whose `@mana-ai/*` imports resolve to the built packages, as after `pnpm add`. */
export interface DocsProject {
  readonly dir: string;
  /** The emitted JavaScript of a block. */
  outputOf(block: ReadmeBlock): string;
  remove(): Promise<void>;
}

/** Third-party modules README blocks may import, and where the workspace has them installed. */
const THIRD_PARTY: Record<string, string> = {
  postgres: 'node_modules/postgres',
  '@types/node': 'node_modules/@types/node',
  fastify: 'packages/core/node_modules/fastify',
  'fastify-plugin': 'packages/core/node_modules/fastify-plugin',
};

/** Creates the scratch project; throws when a package is not built (run `pnpm build` first). */
export async function createDocsProject(): Promise<DocsProject> {
  for (const name of README_PACKAGES) {
    if (!existsSync(join(root, `packages/${name}/dist/index.d.ts`))) throw new Error(`packages/${name} is not built: run pnpm build first`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'mana-ai-readme-'));
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'readme-blocks', private: true, type: 'module' }));
  const links: [string, string][] = [
    ...README_PACKAGES.map((name): [string, string] => [`@mana-ai/${name}`, `packages/${name}`]),
    ...Object.entries(THIRD_PARTY),
  ];
  for (const [module, target] of links) {
    const path = join(dir, 'node_modules', module);
    await mkdir(dirname(path), { recursive: true });
    await symlink(join(root, target), path, 'dir');
  }
  return {
    dir,
    outputOf: (block) => join(dir, 'out', `${block.name}.js`),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** A type error of a block, located in its README. */
export interface BlockDiagnostic {
  /** `packages/<pkg>/README.md:<line>`. */
  readonly at: string;
  readonly message: string;
}

/**
 * Writes every block as its own module and type-checks them together, as a Node service with DOM
 * types would (strict, NodeNext, ES2023); emits JavaScript for the runnable ones. Returns the type
 * errors, located in the READMEs.
 */
export async function compileBlocks(project: DocsProject, blocks: readonly ReadmeBlock[]): Promise<BlockDiagnostic[]> {
  const files = new Map<string, ReadmeBlock>();
  await mkdir(join(project.dir, 'src'), { recursive: true });
  for (const block of blocks) {
    const file = join(project.dir, 'src', `${block.name}.ts`);
    // `export {}` keeps a block without imports a module (top-level await, no global leaks).
    await writeFile(file, `${block.code}\nexport {};\n`);
    files.set(file, block);
  }
  const options: ts.CompilerOptions = {
    strict: true,
    noUncheckedIndexedAccess: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2023.d.ts', 'lib.dom.d.ts'],
    types: ['node'],
    outDir: join(project.dir, 'out'),
    rootDir: join(project.dir, 'src'),
    skipLibCheck: true,
  };
  const program = ts.createProgram([...files.keys()], options);
  const diagnostics = ts.getPreEmitDiagnostics(program).map((diagnostic): BlockDiagnostic => {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
    const block = diagnostic.file ? files.get(diagnostic.file.fileName) : undefined;
    if (!diagnostic.file || !block || diagnostic.start === undefined) return { at: diagnostic.file?.fileName ?? 'tsc', message };
    const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    return { at: `${block.readme}:${block.line + line}`, message };
  });
  if (diagnostics.length === 0) {
    const runnable = new Set(blocks.filter((block) => block.mode !== 'compile').map((block) => join(project.dir, 'src', `${block.name}.ts`)));
    for (const source of program.getSourceFiles()) if (runnable.has(source.fileName)) program.emit(source);
  }
  return diagnostics;
}

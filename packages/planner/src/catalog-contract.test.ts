import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createToolCatalog } from './catalog.js';

const packageRoot = fileURLToPath(new URL('../', import.meta.url));
const repositoryRoot = join(packageRoot, '../..');
const CONTRACT = join(packageRoot, 'contract/tool-catalog.json');
const GENERATOR = join(packageRoot, 'scripts/generate-catalog-data.mjs');
const GENERATED = join(packageRoot, 'src/catalog-data.ts');

interface ContractTool {
  name: string;
  module: string;
  defaultPolicy: string;
  parameters: { name: string; type: string; required: boolean; enum?: string[] }[];
}

const contract = JSON.parse(readFileSync(CONTRACT, 'utf8')) as { count: number; proposeCount: number; autoCount: number; tools: ContractTool[] };

/** The shared contract the repository's copy was taken from, when a checkout has it beside the repository. */
function sharedContract(): string | undefined {
  for (const up of ['..', '../..']) {
    const path = join(repositoryRoot, up, 'shared/contract/tool-catalog.json');
    if (existsSync(path)) return path;
  }
  return undefined;
}

describe('the committed tool catalog contract', () => {
  it('is what the built-in catalog offers: every name, module, default policy, parameter and enum in contract order', () => {
    const catalog = createToolCatalog({ locale: 'en' });
    expect(catalog.tools).toHaveLength(contract.count);
    expect(catalog.tools.filter((tool) => tool.defaultPolicy === 'propose')).toHaveLength(contract.proposeCount);
    expect(catalog.tools.filter((tool) => tool.defaultPolicy === 'auto')).toHaveLength(contract.autoCount);
    expect(
      catalog.tools.map((tool) => ({
        name: tool.name,
        module: tool.module,
        defaultPolicy: tool.defaultPolicy,
        parameters: tool.parameters.map(({ name, type, required, enum: values }) => ({ name, type, required, ...(values ? { enum: values } : {}) })),
      })),
    ).toEqual(
      contract.tools.map((tool) => ({
        name: tool.name,
        module: tool.module,
        defaultPolicy: tool.defaultPolicy,
        parameters: tool.parameters.map(({ name, type, required, enum: values }) => ({ name, type, required, ...(values ? { enum: values } : {}) })),
      })),
    );
  });

  it('is what src/catalog-data.ts was generated from', () => {
    expect(() => execFileSync(process.execPath, [GENERATOR, '--check'], { stdio: 'pipe' })).not.toThrow();
  });

  it('makes the generator check fail when the generated data drifts from the contract', () => {
    const copy = mkdtempSync(join(tmpdir(), 'mana-ai-catalog-'));
    try {
      for (const [from, to] of [
        [GENERATOR, 'scripts/generate-catalog-data.mjs'],
        [GENERATED, 'src/catalog-data.ts'],
      ] as const) {
        mkdirSync(dirname(join(copy, to)), { recursive: true });
        copyFileSync(from, join(copy, to));
      }
      const drifted = structuredClone(contract);
      drifted.tools[0]!.parameters[0]!.name = 'headline';
      mkdirSync(join(copy, 'contract'));
      writeFileSync(join(copy, 'contract/tool-catalog.json'), JSON.stringify(drifted));
      const check = spawnSync(process.execPath, [join(copy, 'scripts/generate-catalog-data.mjs'), '--check'], { encoding: 'utf8' });
      expect(check.status).toBe(1);
      expect(check.stderr).toContain('differs from');
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  it.runIf(sharedContract() !== undefined)('equals the shared contract beside the repository when a checkout has one', () => {
    expect(JSON.parse(readFileSync(CONTRACT, 'utf8'))).toEqual(JSON.parse(readFileSync(sharedContract()!, 'utf8')));
  });
});

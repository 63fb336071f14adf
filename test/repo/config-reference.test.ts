import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES } from '../../apps/runner/src/config.js';
// @ts-expect-error: a plain ESM script without type declarations (tooling/scripts is not a package)
import { CONFIG_REFERENCE_PATH, renderConfigReference } from '../../tooling/scripts/config-reference.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const render = renderConfigReference as (variables: typeof CONFIG_VARIABLES) => string;

describe('docs/configuration.md', () => {
  it('matches the reference rendered from the config schema when nobody forgot to regenerate it', () => {
    const committed = readFileSync(`${root}${CONFIG_REFERENCE_PATH as string}`, 'utf8');
    const expected = render(CONFIG_VARIABLES);
    expect(committed === expected, 'docs/configuration.md is out of date with apps/runner/src/config.ts: run pnpm docs:config').toBe(true);
  });

  it('lists every variable, alias and default of the schema when rendered', () => {
    const rendered = render(CONFIG_VARIABLES);
    const rows = rendered.split('\n').filter((line) => line.startsWith('| `'));
    expect(rows).toHaveLength(CONFIG_VARIABLES.length);
    for (const variable of CONFIG_VARIABLES) {
      const row = rows.find((line) => line.startsWith(`| \`${variable.name}\``));
      expect(row, variable.name).toBeDefined();
      for (const alias of variable.aliases) expect(row).toContain(`(alias \`${alias}\`)`);
      expect(row).toContain(variable.default === undefined ? '| unset |' : `\`${variable.default}\``);
      expect(row).toContain(variable.secret ? '| yes |' : '| no |');
    }
  });

  it('escapes table separators and line breaks when a description contains them', () => {
    const rendered = render([
      { name: 'X_TEST', aliases: ['Y_TEST'], default: 'a|b', description: 'one | two\nthree', expected: 'anything', secret: true },
    ]);
    const row = rendered.split('\n').find((line) => line.startsWith('| `X_TEST`'));
    expect(row).toBe('| `X_TEST` (alias `Y_TEST`) | `a\\|b` | yes | anything | one \\| two three |');
  });
});

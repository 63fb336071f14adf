import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vitest/config';

const packages = ['core', 'projection', 'crypto', 'resolvers', 'planner', 'research'];

/** Tests run against the sources: every `@mana-ai/<pkg>[/sub]` import resolves to `src/`. */
const alias = packages.flatMap((name) => {
  const source = fileURLToPath(new URL(`./packages/${name}/src/`, import.meta.url));
  return [
    { find: new RegExp(`^@mana-ai/${name}$`), replacement: `${source}index.ts` },
    { find: new RegExp(`^@mana-ai/${name}/(fastify|testing)$`), replacement: `${source}$1/index.ts` },
    { find: new RegExp(`^@mana-ai/${name}/(merge)$`), replacement: `${source}$1.ts` },
  ];
});

/** Migration files are imported as text, the same way tsup's `.sql` loader bundles them. */
const sqlText: Plugin = {
  name: 'mana-ai:sql-text',
  enforce: 'pre',
  load(id) {
    if (!id.endsWith('.sql')) return null;
    return `export default ${JSON.stringify(readFileSync(id, 'utf8'))};`;
  },
};

export default defineConfig({
  plugins: [sqlText],
  resolve: { alias },
  test: {
    // One Postgres for the whole run; projects inherit everything else but not this hook.
    globalSetup: [fileURLToPath(new URL('./test/global-setup.ts', import.meta.url))],
    projects: [
      ...packages.map((name) => ({ name, root: `./packages/${name}` })),
      { name: 'runner', root: './apps/runner' },
      // Whole-system suites (real runner processes, fake LLM, real Postgres) and repository checks.
      { name: 'system', root: './test/system' },
      { name: 'repo', root: './test/repo' },
    ].map(({ name, root }) => ({ extends: true as const, test: { name, root, globalSetup: [] } })),
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});

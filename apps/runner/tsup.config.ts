import { defineConfig } from 'tsup';

export default defineConfig({
  // Named entries: `src/demo/demo.ts` builds to `dist/demo.js` (the root `pnpm demo`).
  entry: { index: 'src/index.ts', server: 'src/server.ts', cli: 'src/cli.ts', demo: 'src/demo/demo.ts' },
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
});

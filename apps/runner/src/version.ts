import packageJson from '../package.json' with { type: 'json' };

/** The runner's version, from its package.json (bundled at build time). */
export const RUNNER_VERSION: string = packageJson.version;

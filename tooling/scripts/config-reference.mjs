#!/usr/bin/env node
// Renders docs/configuration.md from the runner's configuration schema (CONFIG_VARIABLES).
//   node tooling/scripts/config-reference.mjs --write   rewrite the file (pnpm docs:config)
//   node tooling/scripts/config-reference.mjs --check   exit 1 when the file is out of date
// Needs the built runner (apps/runner/dist); `pnpm docs:config` builds it first.
import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Where the reference lives, relative to the repository root. */
export const CONFIG_REFERENCE_PATH = 'docs/configuration.md';

/** @param {string} value */
function cell(value) {
  return value.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** @param {string} value */
function code(value) {
  return `\`${value.replace(/\|/g, '\\|')}\``;
}

/**
 * Renders the configuration reference as Markdown.
 * @param {readonly { name: string; aliases: readonly string[]; default: string | undefined; description: string; expected: string; secret: boolean }[]} variables
 * @returns {string}
 */
export function renderConfigReference(variables) {
  const lines = [
    '# Configuration reference',
    '',
    '<!-- Generated from apps/runner/src/config.ts (CONFIG_VARIABLES) by `pnpm docs:config`. Do not edit by hand. -->',
    '',
    'The runner reads its configuration from the environment once at boot and refuses to start when a',
    'value is invalid, naming every bad variable (values are never echoed). An empty variable counts as',
    'unset. Where a variable has an alias, the alias is read only when the variable itself is unset.',
    '',
    `${variables.length} variables. Secret ones are credentials: keep them out of logs, images and version control.`,
    '',
    '| Variable | Default | Secret | Accepted values | Description |',
    '|---|---|---|---|---|',
  ];
  for (const variable of variables) {
    const name = [code(variable.name), ...variable.aliases.map((alias) => `(alias ${code(alias)})`)].join(' ');
    const fallback = variable.default === undefined ? 'unset' : variable.default === '' ? 'empty' : code(variable.default);
    lines.push(`| ${name} | ${fallback} | ${variable.secret ? 'yes' : 'no'} | ${cell(variable.expected)} | ${cell(variable.description)} |`);
  }
  lines.push('');
  return lines.join('\n');
}

async function main(argv) {
  const mode = argv[0];
  if (argv.length !== 1 || (mode !== '--write' && mode !== '--check')) {
    process.stderr.write('usage: config-reference.mjs --write | --check\n');
    process.exit(2);
  }
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const runner = pathToFileURL(resolve(root, 'apps/runner/dist/index.js')).href;
  const { CONFIG_VARIABLES } = await import(runner).catch((error) => {
    process.stderr.write(`config-reference: cannot load the built runner (${error.message}); build it first: pnpm docs:config\n`);
    process.exit(1);
  });
  const target = resolve(root, CONFIG_REFERENCE_PATH);
  const rendered = renderConfigReference(CONFIG_VARIABLES);
  if (mode === '--write') {
    await writeFile(target, rendered);
    process.stdout.write(`wrote ${CONFIG_REFERENCE_PATH} (${CONFIG_VARIABLES.length} variables)\n`);
    return;
  }
  const current = await readFile(target, 'utf8').catch(() => '');
  if (current !== rendered) {
    process.stderr.write(`${CONFIG_REFERENCE_PATH} is out of date: run pnpm docs:config\n`);
    process.exit(1);
  }
  process.stdout.write(`${CONFIG_REFERENCE_PATH} is up to date\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  await main(process.argv.slice(2));
}

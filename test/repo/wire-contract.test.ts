import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));
const tracked = execFileSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' }).split('\n').filter(Boolean);
const read = (path: string): string => readFileSync(join(root, path), 'utf8');
const texts = tracked.filter((path) => /\.(ts|mjs|md|sql|yml|json)$/.test(path) && !path.startsWith('packages/planner/contract/'));

/** GitHub's anchor of a Markdown heading. */
const slug = (heading: string): string =>
  heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .trim()
    .replace(/\s/g, '-');

describe('docs/wire-contract.md', () => {
  const anchors = new Set(
    read('docs/wire-contract.md')
      .split('\n')
      .filter((line) => /^#{2,3} /.test(line))
      .map((line) => slug(line.replace(/^#+ /, ''))),
  );

  it('has a section for every anchor of docs/wire-contract.md the repository cites', () => {
    const cited = new Set(texts.flatMap((path) => [...read(path).matchAll(/wire-contract\.md#([a-z0-9_-]+)/g)].map((match) => match[1]!)));
    expect(cited.size).toBeGreaterThan(10);
    expect([...cited].filter((anchor) => !anchors.has(anchor))).toEqual([]);
  });

  it('is what the source and the migrations cite instead of a document outside the repository', () => {
    const citing = texts.filter((path) => /UPSTREAM/.test(read(path)));
    // This test, and the migration test that quotes the released texts of the rewritten migrations.
    expect(citing.filter((path) => path !== 'test/repo/wire-contract.test.ts' && path !== 'apps/runner/src/migrate.integration.test.ts')).toEqual([]);
  });
});

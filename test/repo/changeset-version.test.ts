import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const changesetsBin = join(root, 'node_modules/@changesets/cli/bin.js');

interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

interface ChangesetConfig {
  updateInternalDependencies: 'patch' | 'minor';
}

type Bump = 'major' | 'minor' | 'patch';

function bump(version: string, kind: Bump): string {
  const [major = 0, minor = 0, patch = 0] = version.split('.').map(Number);
  if (kind === 'major') return `${major + 1}.0.0`;
  if (kind === 'minor') return `${major}.${minor + 1}.0`;
  return `${major}.${minor}.${patch + 1}`;
}

/** Every workspace manifest (relative path) changesets reads, per pnpm-workspace.yaml's globs. */
async function workspaceManifests(): Promise<string[]> {
  const manifests: string[] = [];
  for (const group of ['packages', 'apps', 'tooling']) {
    for (const entry of await readdir(join(root, group), { withFileTypes: true })) {
      const manifest = join(group, entry.name, 'package.json');
      if (entry.isDirectory() && existsSync(join(root, manifest))) manifests.push(manifest);
    }
  }
  return manifests;
}

async function readManifest(dir: string, manifest: string): Promise<Manifest> {
  return JSON.parse(await readFile(join(dir, manifest), 'utf8')) as Manifest;
}

async function fingerprint(paths: readonly string[]): Promise<Record<string, string>> {
  const entries = await Promise.all(
    paths.map(async (path) => {
      const file = join(root, path);
      const hash = existsSync(file) ? createHash('sha256').update(await readFile(file)).digest('hex') : 'absent';
      return [path, hash] as const;
    }),
  );
  return Object.fromEntries(entries);
}

function dependsOn(manifest: Manifest, name: string): boolean {
  return name in (manifest.dependencies ?? {}) || name in (manifest.peerDependencies ?? {});
}

describe('changeset version', () => {
  let scratch: string;
  let manifests: string[];
  let before: Map<string, Manifest>;
  let after: Map<string, Manifest>;
  let config: ChangesetConfig;
  let realRepoBefore: Record<string, string>;
  let realChangesetsBefore: string[];
  let remainingChangesets: string[];

  beforeAll(async () => {
    manifests = await workspaceManifests();
    const changelogs = manifests.map((manifest) => join(dirname(manifest), 'CHANGELOG.md'));
    const watched = [...manifests, ...changelogs, 'package.json', '.changeset/config.json'];
    realRepoBefore = await fingerprint(watched);
    realChangesetsBefore = (await readdir(join(root, '.changeset'))).filter((file) => file.endsWith('.md'));
    config = JSON.parse(await readFile(join(root, '.changeset/config.json'), 'utf8')) as ChangesetConfig;

    // A minimal copy: what changesets reads to find the workspace, its versions and changelogs.
    scratch = await mkdtemp(join(tmpdir(), 'mana-ai-changeset-'));
    const copies = ['package.json', 'pnpm-workspace.yaml', '.changeset/config.json', ...manifests, ...changelogs];
    for (const path of copies) {
      if (!existsSync(join(root, path))) continue;
      await mkdir(dirname(join(scratch, path)), { recursive: true });
      await copyFile(join(root, path), join(scratch, path));
    }
    // The changelog generator (`@changesets/cli/changelog`) is resolved from the copied repository.
    await symlink(join(root, 'node_modules'), join(scratch, 'node_modules'), 'dir');
    const git = (...args: string[]) => run('git', args, { cwd: scratch });
    await git('init', '--quiet');
    await git('-c', 'user.name=test', '-c', 'user.email=test@example.invalid', 'add', '--all');
    await git('-c', 'user.name=test', '-c', 'user.email=test@example.invalid', 'commit', '--quiet', '-m', 'copy');

    before = new Map(
      await Promise.all(manifests.map(async (path) => [path, await readManifest(scratch, path)] as const)),
    );
    await writeFile(
      join(scratch, '.changeset/core-new-cadence.md'),
      '---\n"@mana-ai/core": minor\n---\n\nCore learns a monthly cadence.\n',
    );
    await writeFile(
      join(scratch, '.changeset/planner-retry-fix.md'),
      '---\n"@mana-ai/planner": patch\n---\n\nPlanner retries a timed-out provider call once.\n',
    );

    // A dead registry: `version` must work offline, and fails loudly if it ever reaches out.
    await run(process.execPath, [changesetsBin, 'version'], {
      cwd: scratch,
      timeout: 20_000,
      env: { ...process.env, npm_config_registry: 'http://127.0.0.1:9/', CI: '1' },
    });

    after = new Map(
      await Promise.all(manifests.map(async (path) => [path, await readManifest(scratch, path)] as const)),
    );
    remainingChangesets = (await readdir(join(scratch, '.changeset'))).filter((file) => file.endsWith('.md'));
  }, 30_000);

  afterAll(async () => {
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  function versions(name: string): { from: string; to: string; path: string } {
    for (const [path, manifest] of before) {
      if (manifest.name === name) return { from: manifest.version, to: after.get(path)!.version, path };
    }
    throw new Error(`no workspace package ${name}`);
  }

  async function changelog(path: string): Promise<string> {
    return readFile(join(scratch, dirname(path), 'CHANGELOG.md'), 'utf8');
  }

  it('bumps core by a minor when its changeset says minor', async () => {
    const core = versions('@mana-ai/core');
    expect(core.to).toBe(bump(core.from, 'minor'));
    const text = await changelog(core.path);
    expect(text).toContain(`## ${core.to}`);
    expect(text).toContain('### Minor Changes');
    expect(text).toContain('Core learns a monthly cadence.');
  });

  it('bumps the planner by a patch and records both its change and the core update when it has a patch changeset', async () => {
    const planner = versions('@mana-ai/planner');
    expect(planner.to).toBe(bump(planner.from, 'patch'));
    const text = await changelog(planner.path);
    expect(text).toContain(`## ${planner.to}`);
    expect(text).toContain('Planner retries a timed-out provider call once.');
    expect(text).toContain(`@mana-ai/core@${versions('@mana-ai/core').to}`);
    // The runner depends on the planner, so its changelog names the planner's new version.
    expect(await changelog(versions('@mana-ai/runner').path)).toContain(`@mana-ai/planner@${planner.to}`);
  });

  it('bumps every dependent of core as updateInternalDependencies says when core is bumped', async () => {
    const core = versions('@mana-ai/core');
    const dependents = [...before].filter(([, manifest]) => dependsOn(manifest, '@mana-ai/core'));
    expect(dependents.length).toBeGreaterThanOrEqual(5);
    // Both settings bump dependents on a minor of a 0.x core (it leaves their ^0.0.x range).
    expect(['patch', 'minor']).toContain(config.updateInternalDependencies);
    for (const [path, manifest] of dependents) {
      const next = after.get(path)!;
      // Dependents only get a patch bump (unless they carry their own changeset, like the planner).
      expect(next.version, manifest.name).toBe(bump(manifest.version, 'patch'));
      // The workspace protocol stays: pnpm publish turns it into a real range at pack time.
      expect(next.dependencies?.['@mana-ai/core'] ?? next.peerDependencies?.['@mana-ai/core']).toMatch(
        /^workspace:/,
      );
      const text = await changelog(path);
      expect(text, manifest.name).toContain('Updated dependencies');
      expect(text, manifest.name).toContain(`@mana-ai/core@${core.to}`);
    }
  });

  it('leaves packages untouched when neither they nor their dependencies changed', () => {
    const untouched = [...before].filter(
      ([, manifest]) =>
        manifest.name !== '@mana-ai/core' &&
        !dependsOn(manifest, '@mana-ai/core') &&
        !dependsOn(manifest, '@mana-ai/planner'),
    );
    // The private test harness depends on no package of ours.
    expect(untouched.map(([, manifest]) => manifest.name)).toContain('@mana-ai/test-postgres');
    for (const [path, manifest] of untouched) {
      expect(after.get(path)!.version, manifest.name).toBe(manifest.version);
      expect(existsSync(join(scratch, dirname(path), 'CHANGELOG.md')), manifest.name).toBe(
        existsSync(join(root, dirname(path), 'CHANGELOG.md')),
      );
    }
  });

  it('puts the CHANGELOG.md it writes into the tarball of a published package', async () => {
    const planner = versions('@mana-ai/planner');
    // npm's file list follows `files` like pnpm's; pnpm would need the copy installed to pack it.
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json'], { cwd: join(scratch, dirname(planner.path)), timeout: 60_000 });
    const [packed] = JSON.parse(stdout) as { files: { path: string }[] }[];
    expect(packed?.files.map((file) => file.path)).toContain('CHANGELOG.md');
  });

  it('consumes the changeset files when it writes the versions', () => {
    expect(remainingChangesets).toEqual([]);
  });

  it('does not touch the real repository when it runs on the copy', async () => {
    const changelogs = manifests.map((manifest) => join(dirname(manifest), 'CHANGELOG.md'));
    const watched = [...manifests, ...changelogs, 'package.json', '.changeset/config.json'];
    expect(await fingerprint(watched)).toEqual(realRepoBefore);
    const realChangesetsAfter = (await readdir(join(root, '.changeset'))).filter((file) => file.endsWith('.md'));
    for (const file of realChangesetsBefore) expect(realChangesetsAfter).toContain(file);
    expect(realChangesetsAfter).not.toContain('core-new-cadence.md');
    expect(realChangesetsAfter).not.toContain('planner-retry-fix.md');
  });
});

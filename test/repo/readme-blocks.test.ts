import { type ChildProcess, spawn } from 'node:child_process';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from '@mana-ai/planner/testing';
import { type TestDatabase, createTestDatabase, insertLogRows, missionRecord } from '../../tooling/test-postgres/src/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DocsProject, type ReadmeBlock, compileBlocks, createDocsProject, readmeBlocks } from './support/readme-blocks.js';

const blocks = readmeBlocks();
let project: DocsProject;
let db: TestDatabase;
let llm: FakeLlmServer;
const children: ChildProcess[] = [];

beforeAll(async () => {
  [project, db, llm] = await Promise.all([createDocsProject(), createTestDatabase(), createFakeLlmServer()]);
  // Compiled once for every test below: the runnable blocks are emitted only when all blocks compile.
  compiled = await compileBlocks(project, blocks);
}, 180_000);
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.all([project?.remove(), llm?.close(), db?.drop()]);
});

let compiled: Awaited<ReturnType<typeof compileBlocks>>;

/** Starts a block's emitted JavaScript with the harness's database and fake LLM. */
function start(block: ReadmeBlock): { child: ChildProcess; output: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [project.outputOf(block)], {
    cwd: project.dir,
    env: { ...process.env, DATABASE_URL: db.url, MANA_LLM_URL: llm.url, MANA_LLM_API_KEY: 'readme-key' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exit };
}

/** Resolves once `pattern` appears in the output; rejects when the process exits first. */
async function waitForOutput(run: ReturnType<typeof start>, pattern: RegExp): Promise<RegExpMatchArray> {
  for (;;) {
    const match = run.output().match(pattern);
    if (match) return match;
    if (run.child.exitCode !== null) throw new Error(`exited with ${run.child.exitCode} before ${pattern}:\n${run.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('README code blocks', () => {
  it('type-checks every TypeScript block of the package READMEs against the built packages', () => {
    expect(blocks.length).toBeGreaterThan(20);
    expect(compiled.map((diagnostic) => `${diagnostic.at}: ${diagnostic.message}`)).toEqual([]);
  });

  it.each(blocks.filter((block) => block.mode === 'run').map((block) => [`${block.readme}:${block.line}`, block] as const))(
    'runs %s to a clean exit',
    async (_at, block) => {
      const run = start(block);
      const code = await run.exit;
      expect(code, run.output()).toBe(0);
    },
    60_000,
  );
});

describe('the composition example of core’s README', () => {
  it('migrates an empty database, plans a mission written afterwards with the fake LLM and stops on SIGTERM', async () => {
    const services = blocks.filter((block) => block.mode === 'service');
    expect(services.map((block) => block.readme)).toEqual(['packages/core/README.md']);
    const service = services[0] as ReadmeBlock;
    llm.script(
      { when: { hasToolResult: false }, reply: fakeReplies.toolCalls([{ name: 'create_task', arguments: { title: 'Einkaufen' } }]) },
      { when: { hasToolResult: true }, reply: fakeReplies.text('Ich habe einen Task angelegt.') },
    );
    await db.sql.unsafe('DROP SCHEMA mana_ai CASCADE; DROP TABLE public.sync_changes;');

    const run = start(service);
    const [, applied] = await waitForOutput(run, /migrations applied: (\d+)/);
    expect(Number(applied)).toBeGreaterThan(5);
    await waitForOutput(run, /^dispatching$/m);
    await insertLogRows(db.sql, [{ userId: 'u-readme', recordId: 'm-readme', dataJson: JSON.stringify(missionRecord('m-readme')) }]);
    await waitForOutput(run, /^planned mission m-readme: 1 step\(s\)$/m);
    await waitForOutput(run, /^mission m-readme finished: written$/m);

    run.child.kill('SIGTERM');
    expect(await run.exit, run.output()).toBe(0);
    const rows = await db.sql<{ client_id: string; iterations: number }[]>`
      SELECT client_id, jsonb_array_length(data->'iterations') AS iterations FROM sync_changes
      WHERE record_id = 'm-readme' AND client_id <> 'test-client'`;
    expect(rows).toEqual([{ client_id: 'mana-ai-runner', iterations: 1 }]);
    expect(llm.requests[0]?.headers.authorization).toBe('Bearer readme-key');
  }, 120_000);
});

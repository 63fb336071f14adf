#!/usr/bin/env node
// `pnpm demo`: one real tick on a throwaway embedded PostgreSQL with the planner's fake LLM server.
// Seeds what the webapp would have synced (an agent, a mission, an encrypted note, a grant), runs
// the tick through the real app, and prints what happened in a readable form.
import { readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type TickStats, systemClock } from '@mana-ai/core';
import { type TestKeyPair, generateTestKeyPair, testMasterKey } from '@mana-ai/crypto/testing';
import { type FakeLlmServer, createFakeLlmServer, fakeReplies } from '@mana-ai/planner/testing';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { buildApp } from '../app.js';
import { type Database, openDatabase } from '../database.js';
import { createLogger } from '../logger.js';
import { migrate } from '../migrate.js';
import { type SeededMission, createWebappClient, seedMissionWithNote } from './seed.js';

/** Where the demo's own cluster lives (wiped at the start of every run). */
const DEMO_DATA_DIR = '.mana-ai/demo-pg';
const USER_ID = 'demo-user';
const AGENT_NAME = 'Haushaltsplaner';
const MISSION_TITLE = 'Wocheneinkauf';
const OBJECTIVE = 'Plane die Einkäufe dieser Woche';
const NOTE = { title: 'Einkaufsliste', content: 'Milch, Hafermehl und Kaffeebohnen fehlen; Budget 40 Euro.' };
const TASK = { title: 'Milch, Hafermehl und Kaffeebohnen kaufen', priority: 'high' };
const FINAL_TEXT = 'Ich habe einen Task für den Einkauf angelegt.';

interface WrittenRow {
  data: { iterations: IterationJson[]; nextRunAt: string | null };
  field_meta: Record<string, string>;
  actor: Record<string, string>;
}

interface IterationJson {
  id: string;
  startedAt: string;
  plan: { id: string; summary: string; intent: { kind: string; toolName?: string; params?: unknown }; status: string }[];
  summary: string;
  overallStatus: string;
  source: string;
}

const out = (line = '') => process.stdout.write(`${line}\n`);

function shorten(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** A stale cluster of an interrupted run must be stopped by hand: never delete a live data dir. */
async function wipeDataDir(dataDir: string): Promise<void> {
  const pidFile = await readFile(join(dataDir, 'data', 'postmaster.pid'), 'utf8').catch(() => undefined);
  const pid = pidFile ? Number(pidFile.split('\n')[0]) : Number.NaN;
  if (Number.isInteger(pid) && pid > 0) {
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (alive) throw new Error(`${dataDir} is in use by PostgreSQL process ${pid}; stop it first`);
  }
  await rm(dataDir, { recursive: true, force: true });
}

function printSeed(seeded: SeededMission, dueAt: string, noteCiphertext: string): void {
  out('Seeded as the webapp syncs it (sync_changes rows, op insert/update, origin user):');
  out(`  agent    ${AGENT_NAME} (${seeded.agentId})`);
  out(`  note     notes/${seeded.noteId}, title and content encrypted: ${noteCiphertext.slice(0, 32)}…`);
  out(`  mission  "${MISSION_TITLE}" (${seeded.missionId}), daily at 08:00, due ${dueAt}, input notes/${seeded.noteId}`);
  out(`  grant    tables [${seeded.grant.derivation.tables.join(', ')}], ${seeded.grant.derivation.recordIds.length} record, expires ${seeded.grant.expiresAt}`);
  out();
}

function printStats(stats: TickStats): void {
  const skipped = Object.entries(stats.skipped).map(([reason, count]) => `${reason}=${count}`);
  out('TickStats (POST /internal/tick returns the same):');
  out(`  due ${stats.dueMissionCount} · planned ${stats.plansProduced} · written back ${stats.plansWrittenBack} · parse failures ${stats.parseFailures}`);
  out(`  skipped ${skipped.length > 0 ? skipped.join(', ') : 'none'} · errors ${stats.errors.length > 0 ? stats.errors.join('; ') : 'none'}`);
  out();
}

function printLlm(llm: FakeLlmServer): void {
  out(`What the LLM was sent (${llm.requests.length} requests to the fake server):`);
  llm.requests.forEach((request, index) => {
    const messages = request.body?.messages ?? [];
    out(`  #${index + 1} model ${request.body?.model ?? '?'}, ${messages.length} messages, ${request.body?.tools?.length ?? 0} tools offered`);
    // Later rounds repeat the system and user messages: show only what each round added.
    const shown = index === 0 ? messages : messages.slice(llm.requests[index - 1]?.body?.messages?.length ?? 0);
    for (const message of shown) {
      const content = message.content ?? '';
      if (message.role === 'system') {
        out(`     system: ${shorten(content, 100)}`);
      } else if (message.role === 'user') {
        out(`     user: ${shorten(content, 100)}`);
        // The linked inputs are where the decrypted note lands in the prompt.
        const input = content.indexOf('### notes/');
        const end = content.indexOf('</user_data>', input);
        if (input >= 0) out(`           …${shorten(content.slice(input, end < 0 ? undefined : end), 140)}`);
      } else if (message.role === 'assistant') {
        const calls = (message.tool_calls ?? []) as { function?: { name?: string; arguments?: string } }[];
        const text = calls.map((call) => `${call.function?.name}(${call.function?.arguments})`).join(', ');
        out(`     assistant: ${shorten(text || content, 110)}`);
      } else {
        out(`     ${message.role}: ${shorten(content, 110)}`);
      }
    }
  });
  const leaked = llm.requests.some((request) => request.rawBody.includes('enc:1:'));
  const reached = llm.requests.some((request) => (request.body?.messages ?? []).some((message) => message.content?.includes(NOTE.content)));
  out(`  decrypted note in the prompt: ${reached ? 'yes' : 'NO'} · ciphertext in any request: ${leaked ? 'YES' : 'no'}`);
  out();
}

function printIteration(row: WrittenRow, dueAt: string): void {
  const iteration = row.data.iterations.at(-1)!;
  out('Written back (one sync_changes row, client mana-ai-runner, op update, origin agent):');
  out(`  iteration ${iteration.id} · source ${iteration.source} · ${iteration.overallStatus}`);
  for (const step of iteration.plan) {
    out(`  step ${step.id.slice(step.id.lastIndexOf('-') + 1)}    ${step.intent.toolName ?? step.intent.kind} ${JSON.stringify(step.intent.params ?? {})} · ${step.status}`);
  }
  out(`  summary   ${iteration.summary}`);
  out(`  nextRunAt ${dueAt} → ${row.data.nextRunAt ?? 'none'} (daily 08:00 Europe/Berlin)`);
  out(`  actor     ${row.actor.kind} ${row.actor.displayName} (${row.actor.principalId}), rationale "${row.actor.rationale}"`);
  out(`  stamped   ${Object.keys(row.field_meta).sort().join(', ')} at ${Object.values(row.field_meta)[0] ?? '?'} (field_meta)`);
  out();
}

async function printAudit(database: Database): Promise<void> {
  const rows = await database.sql<{ table_name: string; record_id: string; status: string; reason: string | null; iteration_id: string | null; ts: string }[]>`
    SELECT table_name, record_id, status, reason, iteration_id, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS ts
    FROM mana_ai.decrypt_audit WHERE user_id = ${USER_ID} ORDER BY id`;
  out(`Decrypt audit (mana_ai.decrypt_audit, what GET /api/v1/me/ai-audit shows the user): ${rows.length} row(s)`);
  for (const row of rows) {
    out(`  ${row.ts}  ${row.table_name}/${row.record_id}  ${row.status}${row.reason ? ` (${row.reason})` : ''}  iteration ${row.iteration_id ?? '-'}`);
  }
}

async function main(): Promise<void> {
  const started = performance.now();
  // Logs would drown the output: warnings and errors only, on stderr.
  const logger = createLogger({ level: 'warn', destination: pino.destination(2) });
  const dataDir = resolve(DEMO_DATA_DIR);
  out('mana-ai demo: one tick on an embedded PostgreSQL with a fake OpenAI-compatible LLM');
  out(`  data dir ${dataDir} (wiped first)`);
  out();

  await wipeDataDir(dataDir);
  let database: Database | undefined;
  let llm: FakeLlmServer | undefined;
  let app: FastifyInstance | undefined;
  try {
    const keys: TestKeyPair = await generateTestKeyPair();
    llm = await createFakeLlmServer();
    llm.script(
      { when: { hasToolResult: false, toolOffered: 'create_task' }, reply: fakeReplies.toolCalls([{ name: 'create_task', arguments: TASK }]) },
      { when: { hasToolResult: true }, reply: fakeReplies.text(FINAL_TEXT) },
    );
    database = await openDatabase({ databaseUrl: undefined, concurrency: 2 }, logger, { dataDir });
    await migrate(database.sql, { logger });

    const dueAt = new Date(Math.floor(systemClock.now() / 1000) * 1000 - 60_000).toISOString();
    const webapp = createWebappClient(database.sql, { userId: USER_ID });
    const seeded = await seedMissionWithNote(webapp, {
      publicKeyPem: keys.publicKeyPem,
      masterKey: testMasterKey(),
      agent: { name: AGENT_NAME, role: 'Plant den Haushalt' },
      mission: { title: MISSION_TITLE, objective: OBJECTIVE, cadence: { kind: 'daily', atHour: 8, atMinute: 0 }, nextRunAt: dueAt },
      note: NOTE,
    });
    const [note] = await database.sql<{ title: string }[]>`
      SELECT data->>'title' AS title FROM sync_changes WHERE table_name = 'notes' AND record_id = ${seeded.noteId}`;
    printSeed(seeded, dueAt, note?.title ?? '');

    app = buildApp(
      { sql: database.sql, logger, clock: systemClock },
      {
        serviceKey: 'demo-service-key',
        tickIntervalMs: 60_000,
        tickEnabled: false,
        shutdownTimeoutMs: 5_000,
        llmUrl: llm.url,
        llmMaxRetries: 0,
        privateKeyPem: keys.privateKeyPem,
        instanceId: 'demo',
        concurrency: 2,
      },
    );
    await app.ready();
    const stats = await app.dispatcher.dispatcher.runPass();
    printStats(stats);
    printLlm(llm);

    const [row] = await database.sql<WrittenRow[]>`
      SELECT data, field_meta, actor FROM sync_changes
      WHERE client_id = 'mana-ai-runner' AND record_id = ${seeded.missionId} ORDER BY created_at DESC LIMIT 1`;
    if (row) printIteration(row, dueAt);
    else out('No iteration was written.\n');
    await printAudit(database);
    if (!row || stats.plansWrittenBack !== 1) process.exitCode = 1;
  } finally {
    await app?.close();
    await llm?.close();
    await database?.close();
  }
  out();
  out(`Done in ${((performance.now() - started) / 1000).toFixed(1)} s; embedded PostgreSQL stopped.`);
}

main().catch((error: unknown) => {
  process.stderr.write(`mana-ai demo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});

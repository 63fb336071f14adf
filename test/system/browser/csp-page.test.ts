import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { type IncomingMessage, type ServerResponse, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type GrantDerivation, nextRunAfter } from '@mana-ai/core';
import { decryptValue, deriveMissionDataKey } from '@mana-ai/crypto';
import { createFakeLlmServer, fakeReplies } from '@mana-ai/planner/testing';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

// Chromium from Debian's `chromium` package (.ci/run installs it). In CI its absence fails the
// suite; locally it is skipped with the reason printed.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const CSP = "default-src 'none'; script-src 'self'; connect-src 'self'";

function findChromium(): string | null {
  try {
    return execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

const chromium = findChromium();
if (!chromium && process.env.CI !== 'true') console.warn('browser suite skipped: no chromium on PATH (apt-get install chromium)');

/** Bundles the page from the built packages, resolved through their `exports` like an app would. */
async function bundlePage(): Promise<string> {
  const result = await build({
    entryPoints: [join(root, 'test/system/browser/page.ts')],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
    // The runner depends on every package: its node_modules resolves them to their dist.
    nodePaths: [join(root, 'apps/runner/node_modules')],
  });
  return result.outputFiles[0]!.text;
}

interface PageGrant {
  recordIds: number;
  unwrapped: boolean;
  decrypted?: unknown;
  wire: string;
  derivation: GrantDerivation;
}

/** What page.ts reports. */
interface PageResult {
  evalBlocked: boolean;
  merged: unknown;
  cadence: Record<string, string | null>;
  enc: { wire: string; roundTrip: unknown };
  grants: Record<'small' | 'large', PageGrant>;
  planner: unknown;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

describe.skipIf(!chromium && process.env.CI !== 'true')('browser-safe entry points in headless Chromium under a strict CSP', () => {
  it('runs the LWW merge, cadence math, enc:1: values, grants and the planner loop when eval is forbidden', async () => {
    expect(chromium, 'CI=true needs Debian chromium on PATH (.ci/run installs it)').not.toBeNull();
    const script = await bundlePage();
    const llm = await createFakeLlmServer();
    llm.enqueue(
      fakeReplies.toolCalls([
        { id: 'ok', name: 'create_task', arguments: { title: 'Wocheneinkauf', priority: 'high' } },
        { id: 'bad', name: 'create_task', arguments: { title: 'x', priority: 'urgent' } },
      ]),
      fakeReplies.text('Plan steht.'),
    );
    let resolveReport: (report: unknown) => void = () => {};
    const reported = new Promise<unknown>((resolve) => {
      resolveReport = resolve;
    });
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const url = req.url ?? '/';
      if (url === '/') {
        res.writeHead(200, { 'content-type': 'text/html', 'content-security-policy': CSP });
        res.end('<!doctype html><html><head><script type="module" src="/page.js"></script></head><body></body></html>');
      } else if (url === '/page.js') {
        res.writeHead(200, { 'content-type': 'text/javascript', 'content-security-policy': CSP });
        res.end(script);
      } else if (url === '/result' && req.method === 'POST') {
        void readBody(req).then((body) => {
          res.writeHead(204).end();
          resolveReport(JSON.parse(body));
        });
      } else if (url.startsWith('/llm/')) {
        // The fake LLM behind the page's own origin: `connect-src 'self'` allows it, no CORS needed.
        const upstream = request(`${llm.url}${url.slice('/llm'.length)}`, { method: req.method, headers: req.headers }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        });
        req.pipe(upstream);
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const profile = await mkdtemp(join(tmpdir(), 'mana-ai-chromium-'));
    const browser = spawn(
      chromium!,
      ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', `--user-data-dir=${profile}`, `${origin}/`],
      { stdio: 'ignore' },
    );
    try {
      const exited = new Promise<never>((_, reject) => browser.once('exit', (code) => reject(new Error(`chromium exited with ${code}`))));
      const report = (await Promise.race([reported, exited])) as { ok: boolean; error?: string; result?: PageResult };
      expect(report.error).toBeUndefined();
      const result = report.result!;
      expect(result.evalBlocked).toBe(true);
      expect(result.merged).toMatchObject({ title: 'neu', note: 'a' });
      expect(result.cadence).toEqual({
        daily: '2026-03-29T07:00:00.000Z',
        interval: '2026-03-28T13:30:00.000Z',
        // 02:30 does not exist in Berlin that night (DST starts): the run moves to 03:00 local.
        cron: '2026-03-29T01:00:00.000Z',
      });
      // The same math in Node gives the same instants.
      const after = Date.parse('2026-03-28T12:00:00.000Z');
      expect(nextRunAfter({ kind: 'cron', expression: '30 2 * * *' }, after, { timeZone: 'Europe/Berlin' })?.toISOString()).toBe(result.cadence.cron);
      expect(result.enc.wire).toMatch(/^enc:1:/);
      expect(result.enc.roundTrip).toEqual({ title: 'Einkauf', items: ['Äpfel', '🍐'] });
      for (const [name, count] of [['small', 2], ['large', 1000]] as const) {
        const grant = result.grants[name];
        expect(grant, name).toMatchObject({ recordIds: count, unwrapped: true, decrypted: { note: `geheim ${count}` } });
        // Byte compatibility with Node: the key Node derives from the same grant opens the page's value.
        const nodeKey = await deriveMissionDataKey(new Uint8Array(32).fill(3), grant.derivation);
        expect(await decryptValue(nodeKey, grant.wire), name).toEqual({ note: `geheim ${count}` });
      }
      expect(result.planner).toMatchObject({
        stopReason: 'assistant-stop',
        summary: 'Plan steht.',
        executed: [{ name: 'create_task', arguments: { title: 'Wocheneinkauf', priority: 'high' } }],
        rejected: [{ name: 'create_task', message: expect.stringContaining('priority must be one of low, medium, high') }],
      });
      expect(llm.requests).toHaveLength(2);
    } finally {
      browser.kill('SIGKILL');
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await llm.close();
      await rm(profile, { recursive: true, force: true });
    }
  }, 120_000);
});

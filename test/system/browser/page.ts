// The page the browser suite bundles (esbuild, from the packages' built browser-safe entry points)
// and runs in headless Chromium under `Content-Security-Policy: script-src 'self'`. It reports
// what it computed to POST /result; the test asserts it.
import { nextRunAfter } from '@mana-ai/core';
import { createGrantIssuer, createGrantUnwrapper, decryptValue, deriveMissionDataKey, encryptValue } from '@mana-ai/crypto';
import { createOpenAiCompatibleAdapter, createToolCatalog, runPlannerLoop } from '@mana-ai/planner';
import { mergeChanges } from '@mana-ai/projection/merge';

const MISSION_ID = '00000000-0000-4000-8000-000000000001';

function recordIds(count: number): string[] {
  return Array.from({ length: count }, (_, index) => `10000000-0000-4000-8000-${String(index).padStart(12, '0')}`);
}

async function grantCase(count: number, masterKey: () => Uint8Array, pair: CryptoKeyPair) {
  const issuer = createGrantIssuer({}, { publicKey: pair.publicKey });
  const unwrapper = createGrantUnwrapper({}, { privateKey: pair.privateKey });
  const grant = await issuer.issue(masterKey(), { missionId: MISSION_ID, tables: ['notes', 'tasks'], recordIds: recordIds(count) });
  const unwrapped = await unwrapper.unwrap(grant, { missionId: MISSION_ID });
  if (!unwrapped.ok) return { recordIds: grant.derivation.recordIds.length, unwrapped: false, reason: unwrapped.reason };
  // A value encrypted under the key derived directly from the master key opens with the unwrapped key.
  const encryptKey = await deriveMissionDataKey(masterKey(), grant.derivation, ['encrypt']);
  const wire = await encryptValue(encryptKey, { note: `geheim ${count}` });
  return { recordIds: grant.derivation.recordIds.length, unwrapped: true, decrypted: await decryptValue(unwrapped.key, wire), wire, derivation: grant.derivation };
}

async function main() {
  let evalBlocked = false;
  try {
    // biome-ignore lint/security/noGlobalEval: proves the page runs under a CSP that forbids eval.
    globalThis.eval('1');
  } catch (error) {
    evalBlocked = error instanceof EvalError;
  }

  const merged = mergeChanges(
    [
      { op: 'insert', recordId: 'm1', data: { title: 'alt', note: 'a' }, fieldMeta: { title: '2026-01-01T00:00:00.000Z', note: '2026-01-01T00:00:00.000Z' }, createdAt: '2026-01-01T00:00:00.000Z' },
      { op: 'update', recordId: 'm1', data: { title: 'neu' }, fieldMeta: { title: '2026-01-02T00:00:00.000Z' }, createdAt: '2026-01-02T00:00:00.000Z' },
      { op: 'update', recordId: 'm1', data: { note: 'stale' }, fieldMeta: { note: '2025-12-31T00:00:00.000Z' }, createdAt: '2026-01-03T00:00:00.000Z' },
    ],
    'mission',
  );

  const after = Date.parse('2026-03-28T12:00:00.000Z');
  const cadence = {
    daily: nextRunAfter({ kind: 'daily', atHour: 9, atMinute: 0 }, after, { timeZone: 'Europe/Berlin' })?.toISOString() ?? null,
    interval: nextRunAfter({ kind: 'interval', everyMinutes: 90 }, after)?.toISOString() ?? null,
    cron: nextRunAfter({ kind: 'cron', expression: '30 2 * * *' }, after, { timeZone: 'Europe/Berlin' })?.toISOString() ?? null,
  };

  const valueKey = await deriveMissionDataKey(new Uint8Array(32).fill(7), { version: 'v1', missionId: MISSION_ID, tables: ['notes'], recordIds: ['n1'] }, ['encrypt', 'decrypt']);
  const wire = await encryptValue(valueKey, { title: 'Einkauf', items: ['Äpfel', '🍐'] });
  const enc = { wire, roundTrip: await decryptValue(valueKey, wire) };

  const pair = await crypto.subtle.generateKey(
    { name: 'RSA-OAEP', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    false,
    ['encrypt', 'decrypt'],
  );
  const masterKey = () => new Uint8Array(32).fill(3);
  const grants = { small: await grantCase(2, masterKey, pair), large: await grantCase(1000, masterKey, pair) };

  const catalog = createToolCatalog({ locale: 'en' });
  const adapter = createOpenAiCompatibleAdapter({ fetch: globalThis.fetch.bind(globalThis) }, { baseUrl: `${location.origin}/llm`, model: 'fake' });
  const loop = await runPlannerLoop({ adapter }, { systemPrompt: 'You plan.', userPrompt: 'Plan my week.', toolSet: catalog.toolSetForPolicy(undefined) });
  const planner = {
    stopReason: loop.stopReason,
    summary: loop.summary,
    executed: loop.executedCalls.map(({ call }) => ({ name: call.name, arguments: call.arguments })),
    rejected: loop.rejectedCalls.map(({ call, result }) => ({ name: call.name, message: result.message })),
  };
  return { evalBlocked, merged, cadence, enc, grants, planner };
}

main()
  .then((result) => ({ ok: true, result }))
  .catch((error: unknown) => ({ ok: false, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) }))
  .then((report) => fetch('/result', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(report) }));

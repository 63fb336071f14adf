import type { Agent, Mission, MissionInputRef, MissionIteration } from '@mana-ai/core';

const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$/i;

/**
 * The canonical `toISOString()` form of an ISO-8601 instant with a zone (`Z` or an offset, with or
 * without seconds and fractions), or null for anything else. Due times are compared as instants,
 * never as text (B27).
 */
export function canonicalInstant(value: unknown): string | null {
  if (typeof value !== 'string' || !ISO_INSTANT.test(value)) return null;
  const withColon = value.replace(/([+-]\d{2})(\d{2})$/, '$1:$2');
  const ms = Date.parse(withColon);
  if (!Number.isFinite(ms)) return null;
  const iso = new Date(ms).toISOString();
  // An offset can push a year-9999 or year-1 value out of the four-digit years (`+010000-…`,
  // `0000-…`) that PostgreSQL's timestamptz input accepts: such a time is treated as no time.
  return /^(?!0000)\d{4}-/.test(iso) ? iso : null;
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

// Synced records are user data: a field can hold anything JSON can, including objects whose
// `toString` is not a function, on which String() throws. Only scalars are turned into text.
function text(value: unknown, fallback: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return fallback;
}

// Like upstream's Number(value ?? 1): missing is 1, numeric text is its number, anything else NaN
// (which never limits), but without calling a record's own valueOf/toString.
function concurrencyLimit(value: unknown): number {
  if (value === undefined || value === null) return 1;
  if (typeof value === 'number') return value;
  if (typeof value === 'string' || typeof value === 'boolean') return Number(value);
  return Number.NaN;
}

/** Why an entry of a mission's `inputs` or `iterations` was left out (`mana_ai_mission_entries_skipped_total{reason}`). */
export type MalformedEntryReason = 'not-object' | 'field-type';

/** Every {@link MalformedEntryReason}. */
export const MALFORMED_ENTRY_REASONS: readonly MalformedEntryReason[] = ['not-object', 'field-type'];

/** The mission fields whose entries are checked one by one. */
export type MissionEntryField = 'inputs' | 'iterations';

/** Every {@link MissionEntryField}. */
export const MISSION_ENTRY_FIELDS: readonly MissionEntryField[] = ['inputs', 'iterations'];

/** An entry of a mission record left out as malformed: where it was and why, never its content. */
export interface MalformedEntry {
  field: MissionEntryField;
  /** Its position in the stored array. */
  index: number;
  reason: MalformedEntryReason;
  /** With `field-type`: the entry's key that held the wrong type (`id`, `startedAt`, `plan`, …). */
  key?: string;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

// Absent (or JSON null) is allowed: readers fall back; any other type would throw where they read it.
const optionalText = (value: unknown): boolean => value === undefined || value === null || typeof value === 'string';

const INPUT_KEYS = ['module', 'table', 'id'] as const;
const ITERATION_TEXT_KEYS = ['id', 'startedAt', 'finishedAt', 'summary', 'userFeedback', 'overallStatus', 'source'] as const;
const STEP_TEXT_KEYS = ['id', 'summary', 'status'] as const;

function inputProblem(entry: unknown): Omit<MalformedEntry, 'field' | 'index'> | null {
  if (!isObject(entry)) return { reason: 'not-object' };
  const key = INPUT_KEYS.find((name) => typeof entry[name] !== 'string');
  return key ? { reason: 'field-type', key } : null;
}

function iterationProblem(entry: unknown): Omit<MalformedEntry, 'field' | 'index'> | null {
  if (!isObject(entry)) return { reason: 'not-object' };
  const key = ITERATION_TEXT_KEYS.find((name) => !optionalText(entry[name]));
  if (key) return { reason: 'field-type', key };
  const plan = entry.plan;
  if (plan === undefined || plan === null) return null;
  const stepsOk = Array.isArray(plan) && plan.every((step) => isObject(step) && STEP_TEXT_KEYS.every((name) => optionalText(step[name])));
  return stepsOk ? null : { reason: 'field-type', key: 'plan' };
}

/** The entries of `value` (an array, else none) that pass `problem`, reporting the others. */
function entries<T>(
  value: unknown,
  field: MissionEntryField,
  problem: (entry: unknown) => Omit<MalformedEntry, 'field' | 'index'> | null,
  onMalformed: ((entry: MalformedEntry) => void) | undefined,
): T[] {
  if (!Array.isArray(value)) return [];
  const kept: T[] = [];
  value.forEach((entry: unknown, index) => {
    const found = problem(entry);
    if (found) onMalformed?.({ field, index, ...found });
    else kept.push(entry as T);
  });
  return kept;
}

/**
 * Maps a mission snapshot record to a {@link Mission} (docs/wire-contract.md#missions-and-agents
 * `ServerMission`, plus `timezone`). Synced records are user data: an entry of `inputs` that is not an object with string
 * `module`, `table` and `id`, or an entry of `iterations` that is not an object, holds a non-string
 * `id`/`startedAt`/`finishedAt`/`summary`/`userFeedback`/`overallStatus`/`source`, or a `plan` that is not
 * an array of objects with string `id`/`summary`/`status`, is left out and reported to `onMalformed`.
 * The stored record keeps them (a write-back appends to it as stored).
 */
export function toMission(userId: string, record: Record<string, unknown>, onMalformed?: (entry: MalformedEntry) => void): Mission {
  const mission: Mission = {
    id: text(record.id, ''),
    userId,
    title: text(record.title, ''),
    objective: text(record.objective, ''),
    conceptMarkdown: text(record.conceptMarkdown, ''),
    state: text(record.state, ''),
    inputs: entries<MissionInputRef>(record.inputs, 'inputs', inputProblem, onMalformed),
    cadence: record.cadence as Mission['cadence'],
    iterations: entries<MissionIteration>(record.iterations, 'iterations', iterationProblem, onMalformed),
  };
  const nextRunAt = optionalString(record.nextRunAt);
  if (nextRunAt !== undefined) mission.nextRunAt = nextRunAt;
  if (record.grant !== null && record.grant !== undefined) mission.grant = record.grant as Mission['grant'];
  const agentId = optionalString(record.agentId);
  if (agentId !== undefined) mission.agentId = agentId;
  const timezone = optionalString(record.timezone);
  if (timezone) mission.timezone = timezone;
  return mission;
}

/** Maps an agent snapshot record to an {@link Agent} (docs/wire-contract.md#missions-and-agents `toServerAgent`). */
export function toAgent(userId: string, record: Record<string, unknown>): Agent {
  const agent: Agent = {
    id: text(record.id, ''),
    userId,
    name: text(record.name, 'Unnamed'),
    role: text(record.role, ''),
    state: text(record.state, 'active'),
    maxConcurrentMissions: concurrencyLimit(record.maxConcurrentMissions),
  };
  const avatar = optionalString(record.avatar);
  if (avatar !== undefined) agent.avatar = avatar;
  const systemPrompt = optionalString(record.systemPrompt);
  if (systemPrompt !== undefined) agent.systemPrompt = systemPrompt;
  const memory = optionalString(record.memory);
  if (memory !== undefined) agent.memory = memory;
  if (typeof record.policy === 'object' && record.policy !== null && !Array.isArray(record.policy)) {
    agent.policy = record.policy as Agent['policy'];
  }
  if (typeof record.maxTokensPerDay === 'number') agent.maxTokensPerDay = record.maxTokensPerDay;
  const deletedAt = optionalString(record.deletedAt);
  if (deletedAt !== undefined) agent.deletedAt = deletedAt;
  return agent;
}

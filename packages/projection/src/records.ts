import type { Agent, Mission, MissionIteration } from '@mana-ai/core';

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

/** Maps a mission snapshot record to a {@link Mission} (docs/wire-contract.md#missions-and-agents `ServerMission`, plus `timezone`). */
export function toMission(userId: string, record: Record<string, unknown>): Mission {
  const mission: Mission = {
    id: text(record.id, ''),
    userId,
    title: text(record.title, ''),
    objective: text(record.objective, ''),
    conceptMarkdown: text(record.conceptMarkdown, ''),
    state: text(record.state, ''),
    inputs: Array.isArray(record.inputs) ? (record.inputs as Mission['inputs']) : [],
    cadence: record.cadence as Mission['cadence'],
    iterations: Array.isArray(record.iterations) ? (record.iterations as MissionIteration[]) : [],
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

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
  return Number.isFinite(ms) ? new Date(ms).toISOString() : null;
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** Maps a mission snapshot record to a {@link Mission} (UPSTREAM §3.10 `ServerMission`, plus `timezone`). */
export function toMission(userId: string, record: Record<string, unknown>): Mission {
  const mission: Mission = {
    id: String(record.id),
    userId,
    title: String(record.title ?? ''),
    objective: String(record.objective ?? ''),
    conceptMarkdown: String(record.conceptMarkdown ?? ''),
    state: String(record.state ?? ''),
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

/** Maps an agent snapshot record to an {@link Agent} (UPSTREAM §3.10 `toServerAgent`). */
export function toAgent(userId: string, record: Record<string, unknown>): Agent {
  const agent: Agent = {
    id: String(record.id),
    userId,
    name: String(record.name ?? 'Unnamed'),
    role: String(record.role ?? ''),
    state: String(record.state ?? 'active'),
    maxConcurrentMissions: Number(record.maxConcurrentMissions ?? 1),
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

import type { ResolvedInput } from '@mana-ai/core';
import { ResearchError } from './errors.js';
import { type FetchLike, isRecord, malformed, positive, requestJson, trimBaseUrl } from './http.js';
import { RESEARCH_FOOTER, WEB_RESEARCH_INPUT_ID, WEB_RESEARCH_MODULE, WEB_RESEARCH_TABLE } from './shallow-research.js';
import { shortTitle } from './trigger.js';

/** Every deep-research provider mana-research accepts, e.g. to initialise labelled counters at 0. */
export const DEEP_RESEARCH_PROVIDERS = Object.freeze(['openai-deep-research', 'gemini-deep-research', 'gemini-deep-research-max'] as const);

/** Deep-research providers mana-research accepts. */
export type DeepResearchProvider = (typeof DEEP_RESEARCH_PROVIDERS)[number];

/** The provider mana-ai submits to (docs/wire-contract.md#deep-research). */
export const DEFAULT_DEEP_RESEARCH_PROVIDER: DeepResearchProvider = 'gemini-deep-research-max';

/** Remote status of a deep-research task. */
export type DeepResearchStatus = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

/** One source of a deep-research answer. */
export interface DeepResearchCitation {
  url: string;
  title: string;
  snippet?: string;
}

/** The answer of a completed deep-research task (mana-research `AgentAnswer`, the parts we use). */
export interface DeepResearchAnswer {
  answer: string;
  citations: DeepResearchCitation[];
  query?: string;
  followUpQueries?: string[];
  tokenUsage?: { input: number; output: number };
}

/** What a successful submit returned. */
export interface DeepResearchSubmission {
  taskId: string;
  status: 'queued' | 'running';
  providerId: string;
  costCredits?: number;
}

/** What a successful poll returned; `answer` only when completed with a usable body. */
export interface DeepResearchPoll {
  taskId: string;
  status: DeepResearchStatus;
  providerId: string;
  answer?: DeepResearchAnswer;
}

/** Collaborators of the deep research client. */
export interface DeepResearchDeps {
  fetch?: FetchLike;
}

/** Options of the deep research client. */
export interface DeepResearchOptions {
  /** mana-research base URL (`MANA_RESEARCH_URL`), e.g. `http://localhost:3068`. */
  baseUrl: string;
  /** Sent as `X-Service-Key` (`MANA_SERVICE_KEY`); never logged. */
  serviceKey: string;
  /** Sent as `X-App-Id`; default `mana-ai`. */
  appId?: string;
  /** Default provider of {@link DeepResearchClient.submit}; default `gemini-deep-research-max`. */
  provider?: DeepResearchProvider;
  /** Default 30 000 ms. */
  submitTimeoutMs?: number;
  /** Default 15 000 ms. */
  pollTimeoutMs?: number;
}

/**
 * The deep research client: mana-research's async endpoints. Every failure (non-2xx, timeout,
 * network, malformed body) throws a {@link ResearchError}.
 */
export interface DeepResearchClient {
  /** The provider `submit` uses when none is given. */
  readonly provider: DeepResearchProvider;
  /** Submits `query` for `userId`. */
  submit(userId: string, query: string, provider?: DeepResearchProvider): Promise<DeepResearchSubmission>;
  /** Reads the state of `taskId` for `userId`. */
  poll(userId: string, taskId: string): Promise<DeepResearchPoll>;
}

/** Default deep research options (docs/wire-contract.md#deep-research). */
export const DEEP_RESEARCH_DEFAULTS = {
  appId: 'mana-ai',
  provider: DEFAULT_DEEP_RESEARCH_PROVIDER,
  submitTimeoutMs: 30_000,
  pollTimeoutMs: 15_000,
} as const;

const STATUSES: readonly DeepResearchStatus[] = ['queued', 'running', 'completed', 'failed', 'cancelled'];

/** Creates a {@link DeepResearchClient}. Invalid options throw `RESEARCH_INVALID_OPTIONS`. */
export function createDeepResearchClient(deps: DeepResearchDeps, options: DeepResearchOptions): DeepResearchClient {
  const fetchFn: FetchLike = deps.fetch ?? ((input, init) => fetch(input, init));
  const baseUrl = trimBaseUrl(options.baseUrl);
  if (typeof options.serviceKey !== 'string' || options.serviceKey.length === 0) {
    throw new ResearchError('RESEARCH_INVALID_OPTIONS', 'serviceKey must not be empty', { operation: 'config' });
  }
  const appId = options.appId ?? DEEP_RESEARCH_DEFAULTS.appId;
  const provider = options.provider ?? DEEP_RESEARCH_DEFAULTS.provider;
  const submitTimeoutMs = positive('submitTimeoutMs', options.submitTimeoutMs ?? DEEP_RESEARCH_DEFAULTS.submitTimeoutMs);
  const pollTimeoutMs = positive('pollTimeoutMs', options.pollTimeoutMs ?? DEEP_RESEARCH_DEFAULTS.pollTimeoutMs);
  const headers = (userId: string, json: boolean): Record<string, string> => ({
    ...(json ? { 'Content-Type': 'application/json' } : {}),
    'X-Service-Key': options.serviceKey,
    'X-User-Id': userId,
    'X-App-Id': appId,
  });

  return {
    provider,
    async submit(userId, query, chosen = provider) {
      const body = await requestJson(fetchFn, {
        operation: 'submit',
        url: `${baseUrl}/api/v1/internal/research/async`,
        method: 'POST',
        headers: headers(userId, true),
        body: { query, provider: chosen },
        timeoutMs: submitTimeoutMs,
      });
      if (!isRecord(body) || typeof body.taskId !== 'string' || body.taskId.length === 0) {
        throw malformed('submit', 'a body without a taskId');
      }
      if (body.status !== 'queued' && body.status !== 'running') throw malformed('submit', 'an unexpected status');
      return {
        taskId: body.taskId,
        status: body.status,
        providerId: typeof body.providerId === 'string' && body.providerId.length > 0 ? body.providerId : chosen,
        ...(typeof body.costCredits === 'number' ? { costCredits: body.costCredits } : {}),
      };
    },
    async poll(userId, taskId) {
      const body = await requestJson(fetchFn, {
        operation: 'poll',
        url: `${baseUrl}/api/v1/internal/research/async/${encodeURIComponent(taskId)}`,
        method: 'GET',
        headers: headers(userId, false),
        timeoutMs: pollTimeoutMs,
      });
      if (!isRecord(body) || !STATUSES.includes(body.status as DeepResearchStatus)) {
        throw malformed('poll', 'a body without a known status');
      }
      const answer = body.status === 'completed' ? parseAnswer(body.result) : undefined;
      return {
        taskId: typeof body.taskId === 'string' ? body.taskId : taskId,
        status: body.status as DeepResearchStatus,
        providerId: typeof body.providerId === 'string' ? body.providerId : '',
        ...(answer ? { answer } : {}),
      };
    },
  };
}

/** `result.answer` of a completed poll, or undefined when it has no usable answer text. */
function parseAnswer(result: unknown): DeepResearchAnswer | undefined {
  if (!isRecord(result) || !isRecord(result.answer)) return undefined;
  const raw = result.answer;
  if (typeof raw.answer !== 'string' || raw.answer.trim().length === 0) return undefined;
  const citations: DeepResearchCitation[] = [];
  if (Array.isArray(raw.citations)) {
    for (const citation of raw.citations) {
      if (!isRecord(citation) || typeof citation.url !== 'string' || typeof citation.title !== 'string') continue;
      citations.push({
        url: citation.url,
        title: citation.title,
        ...(typeof citation.snippet === 'string' && citation.snippet.length > 0 ? { snippet: citation.snippet } : {}),
      });
    }
  }
  const followUpQueries = Array.isArray(raw.followUpQueries)
    ? raw.followUpQueries.filter((query): query is string => typeof query === 'string')
    : undefined;
  const usage = isRecord(raw.tokenUsage) ? raw.tokenUsage : undefined;
  return {
    answer: raw.answer,
    citations,
    ...(typeof raw.query === 'string' ? { query: raw.query } : {}),
    ...(followUpQueries && followUpQueries.length > 0 ? { followUpQueries } : {}),
    ...(usage && typeof usage.input === 'number' && typeof usage.output === 'number'
      ? { tokenUsage: { input: usage.input, output: usage.output } }
      : {}),
  };
}

/** The deep research context block the planner sees (docs/wire-contract.md#deep-research, byte-compatible). */
export function formatDeepResearch(objective: string, answer: DeepResearchAnswer): string {
  const lines = [`# Deep-Research: "${objective}"`, '', answer.answer.trim(), ''];
  if (answer.citations.length > 0) {
    lines.push('## Quellen');
    for (const citation of answer.citations) {
      lines.push(`- [${citation.title}](${citation.url})${citation.snippet ? ` — ${citation.snippet}` : ''}`);
    }
    lines.push('');
  }
  lines.push('---', RESEARCH_FOOTER);
  return lines.join('\n');
}

/** A deep research answer as the `__web-research__` resolved input. */
export function toDeepResearchInput(objective: string, answer: DeepResearchAnswer): ResolvedInput {
  return {
    id: WEB_RESEARCH_INPUT_ID,
    module: WEB_RESEARCH_MODULE,
    table: WEB_RESEARCH_TABLE,
    title: `Deep Research: "${shortTitle(objective)}"`,
    content: formatDeepResearch(objective, answer),
  };
}

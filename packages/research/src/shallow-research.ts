import { type Logger, type ResolvedInput, describeError, noopLogger } from '@mana-ai/core';
import { ResearchError, isResearchError } from './errors.js';
import { type FetchLike, isRecord, malformed, positive, requestJson, trimBaseUrl } from './http.js';
import { shortTitle } from './trigger.js';

/** Id of the resolved input that carries research results (shallow and deep). */
export const WEB_RESEARCH_INPUT_ID = '__web-research__';
/** Module of the research resolved input. */
export const WEB_RESEARCH_MODULE = 'news-research';
/** Table of the research resolved input. */
export const WEB_RESEARCH_TABLE = 'web';

/** Closing lines of every research context (docs/wire-contract.md#shallow-research, docs/wire-contract.md#deep-research). */
export const RESEARCH_FOOTER = 'Nutze diese Quellen fuer deinen Plan. Verwende nur URLs die oben stehen; erfinde keine.';

/**
 * How the shallow client authenticates to mana-api. The original sends nothing and is always
 * rejected (B3, docs/wire-contract.md#the-originals-known-defects); `none` exists for services that really are open.
 */
export type ShallowResearchAuth =
  | { type: 'none' }
  | {
      type: 'service-key';
      /** Sent in `serviceKeyHeader`; never logged. */
      serviceKey: string;
      /** Default `X-Service-Key`. */
      serviceKeyHeader?: string;
      /** Header carrying the mission's user id; default `X-User-Id`. */
      userIdHeader?: string;
    }
  | {
      type: 'bearer';
      /** Returns the bearer token for this user (e.g. a short-lived service JWT); never logged. */
      token: (request: { userId: string }) => string | Promise<string>;
    };

/** A feed found by `/discover`. */
export interface DiscoveredFeed {
  url: string;
  title?: string;
  description?: string;
}

/** An article found by `/search`. */
export interface ResearchArticle {
  url: string;
  title: string;
  excerpt: string | null;
  publishedAt: string | null;
  feedUrl?: string;
  score?: number;
}

/** What a successful shallow research found. */
export interface ShallowResearchResult {
  articles: ResearchArticle[];
  feedCount: number;
  contextMarkdown: string;
}

/** The outcome of one shallow research: found, nothing found at a stage, or a typed error. Never thrown. */
export type ShallowResearchOutcome =
  | ({ status: 'found' } & ShallowResearchResult)
  | { status: 'empty'; stage: 'discover' | 'search' }
  | { status: 'error'; error: ResearchError };

/** Collaborators of the shallow research client. */
export interface ShallowResearchDeps {
  fetch?: FetchLike;
  logger?: Logger;
}

/** Options of the shallow research client. */
export interface ShallowResearchOptions {
  /** mana-api base URL (`MANA_API_URL`), e.g. `http://localhost:3060`. */
  baseUrl: string;
  /** Outbound authentication; required so that "no auth" is a visible decision. */
  auth: ShallowResearchAuth;
  /** Discover language; default `de`. */
  language?: string;
  /** Feeds asked from `/discover`; default 5. */
  discoverLimit?: number;
  /** Articles asked from `/search`; default 8. */
  searchLimit?: number;
  /** Default 15 000 ms. */
  discoverTimeoutMs?: number;
  /** Default 30 000 ms. */
  searchTimeoutMs?: number;
}

/** Per-call parameters of {@link ShallowResearchClient.research}. */
export interface ShallowResearchRequest {
  /** The mission's user, sent in the user id header or handed to the token provider. */
  userId: string;
  language?: string;
  limit?: number;
}

/** The shallow web-research client: mana-api's news-research discover + search. */
export interface ShallowResearchClient {
  /** Discovers feeds for `query`, then searches them. Never throws; failures come back as `status: 'error'`. */
  research(query: string, request: ShallowResearchRequest): Promise<ShallowResearchOutcome>;
}

/** Default shallow research options (docs/wire-contract.md#shallow-research). */
export const SHALLOW_RESEARCH_DEFAULTS = {
  language: 'de',
  discoverLimit: 5,
  searchLimit: 8,
  discoverTimeoutMs: 15_000,
  searchTimeoutMs: 30_000,
} as const;

/** Creates a {@link ShallowResearchClient}. Invalid options throw `RESEARCH_INVALID_OPTIONS`. */
export function createShallowResearchClient(
  deps: ShallowResearchDeps,
  options: ShallowResearchOptions,
): ShallowResearchClient {
  const fetchFn: FetchLike = deps.fetch ?? ((input, init) => fetch(input, init));
  const logger = deps.logger ?? noopLogger;
  const baseUrl = trimBaseUrl(options.baseUrl);
  const language = options.language ?? SHALLOW_RESEARCH_DEFAULTS.language;
  const discoverLimit = positive('discoverLimit', options.discoverLimit ?? SHALLOW_RESEARCH_DEFAULTS.discoverLimit);
  const searchLimit = positive('searchLimit', options.searchLimit ?? SHALLOW_RESEARCH_DEFAULTS.searchLimit);
  const discoverTimeoutMs = positive(
    'discoverTimeoutMs',
    options.discoverTimeoutMs ?? SHALLOW_RESEARCH_DEFAULTS.discoverTimeoutMs,
  );
  const searchTimeoutMs = positive('searchTimeoutMs', options.searchTimeoutMs ?? SHALLOW_RESEARCH_DEFAULTS.searchTimeoutMs);
  const auth = validateAuth(options.auth);

  async function headersFor(userId: string): Promise<Record<string, string>> {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (auth.type === 'service-key') {
      headers[auth.serviceKeyHeader ?? 'X-Service-Key'] = auth.serviceKey;
      headers[auth.userIdHeader ?? 'X-User-Id'] = userId;
    } else if (auth.type === 'bearer') {
      headers.Authorization = `Bearer ${await auth.token({ userId })}`;
    }
    return headers;
  }

  return {
    async research(query, request) {
      try {
        const headers = await headersFor(request.userId);
        const discovered = await requestJson(fetchFn, {
          operation: 'discover',
          url: `${baseUrl}/api/v1/news-research/discover`,
          method: 'POST',
          headers,
          body: { query, language: request.language ?? language, limit: discoverLimit },
          timeoutMs: discoverTimeoutMs,
        });
        const feeds = parseFeeds(discovered);
        if (feeds.length === 0) return { status: 'empty', stage: 'discover' };
        const searched = await requestJson(fetchFn, {
          operation: 'search',
          url: `${baseUrl}/api/v1/news-research/search`,
          method: 'POST',
          headers,
          body: { feeds: feeds.map((feed) => feed.url), query, limit: request.limit ?? searchLimit },
          timeoutMs: searchTimeoutMs,
        });
        const articles = parseArticles(searched);
        if (articles.length === 0) return { status: 'empty', stage: 'search' };
        return {
          status: 'found',
          articles,
          feedCount: feeds.length,
          contextMarkdown: formatShallowResearch(query, feeds.length, articles),
        };
      } catch (error) {
        const researchError = isResearchError(error)
          ? error
          : new ResearchError('RESEARCH_NETWORK', 'shallow research failed unexpectedly', {
              operation: 'discover',
              cause: error,
            });
        logger.warn(
          { operation: researchError.operation, code: researchError.code, status: researchError.status },
          'shallow research failed',
        );
        if (!isResearchError(error)) logger.debug({ reason: describeError(error) }, 'shallow research failure cause');
        return { status: 'error', error: researchError };
      }
    },
  };
}

function validateAuth(auth: ShallowResearchAuth | undefined): ShallowResearchAuth {
  if (!auth || !['none', 'service-key', 'bearer'].includes(auth.type)) {
    throw new ResearchError('RESEARCH_INVALID_OPTIONS', 'auth must be none, service-key or bearer', {
      operation: 'config',
    });
  }
  if (auth.type === 'service-key' && auth.serviceKey.length === 0) {
    throw new ResearchError('RESEARCH_INVALID_OPTIONS', 'auth.serviceKey must not be empty', { operation: 'config' });
  }
  if (auth.type === 'bearer' && typeof auth.token !== 'function') {
    throw new ResearchError('RESEARCH_INVALID_OPTIONS', 'auth.token must be a function', { operation: 'config' });
  }
  return auth;
}

function parseFeeds(body: unknown): DiscoveredFeed[] {
  if (!isRecord(body) || !Array.isArray(body.feeds)) throw malformed('discover', 'a body without a feeds array');
  const feeds: DiscoveredFeed[] = [];
  for (const feed of body.feeds) {
    if (!isRecord(feed) || typeof feed.url !== 'string' || feed.url.length === 0) continue;
    feeds.push({
      url: feed.url,
      ...(typeof feed.title === 'string' ? { title: feed.title } : {}),
      ...(typeof feed.description === 'string' ? { description: feed.description } : {}),
    });
  }
  return feeds;
}

function parseArticles(body: unknown): ResearchArticle[] {
  if (!isRecord(body) || !Array.isArray(body.articles)) throw malformed('search', 'a body without an articles array');
  const articles: ResearchArticle[] = [];
  for (const article of body.articles) {
    if (!isRecord(article) || typeof article.url !== 'string' || typeof article.title !== 'string') continue;
    articles.push({
      url: article.url,
      title: article.title,
      excerpt: typeof article.excerpt === 'string' ? article.excerpt : null,
      publishedAt: typeof article.publishedAt === 'string' ? article.publishedAt : null,
      ...(typeof article.feedUrl === 'string' ? { feedUrl: article.feedUrl } : {}),
      ...(typeof article.score === 'number' ? { score: article.score } : {}),
    });
  }
  return articles;
}

/** The shallow research context block the planner sees (docs/wire-contract.md#shallow-research, byte-compatible). */
export function formatShallowResearch(query: string, feedCount: number, articles: readonly ResearchArticle[]): string {
  const lines = [
    `# Web-Research: "${query}"`,
    '',
    `${feedCount} Quellen durchsucht, ${articles.length} relevante Artikel gefunden:`,
    '',
  ];
  for (const article of articles) {
    lines.push(`## ${article.title}`);
    if (article.excerpt) lines.push(`> ${article.excerpt}`);
    lines.push(`URL: ${article.url}`);
    if (article.publishedAt) lines.push(`Datum: ${article.publishedAt}`);
    lines.push('');
  }
  lines.push('---', RESEARCH_FOOTER);
  return lines.join('\n');
}

/** The shallow research result as the `__web-research__` resolved input. */
export function toShallowResearchInput(objective: string, result: ShallowResearchResult): ResolvedInput {
  return {
    id: WEB_RESEARCH_INPUT_ID,
    module: WEB_RESEARCH_MODULE,
    table: WEB_RESEARCH_TABLE,
    title: `Web-Research: "${shortTitle(objective)}"`,
    content: result.contextMarkdown,
  };
}

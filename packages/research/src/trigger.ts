/** Prefix of an encrypted field value (`enc:1:<iv>.<ciphertext>`). */
export const CIPHERTEXT_PREFIX = 'enc:1:';

/** Shallow web research runs when this matches the objective or the concept (docs/wire-contract.md#shallow-research). */
export const RESEARCH_TRIGGER = /\b(recherchier|research|news|finde|suche|aktuelle|neueste|today|history|historisch|on this day)/i;

/** Deep research is requested when this matches the objective or the concept (docs/wire-contract.md#deep-research). */
export const DEEP_RESEARCH_TRIGGER =
  /\b(deep research|tiefe recherche|umfassende recherche|hintergrundrecherche|deep dive)\b/i;

/** The mission fields research looks at; `deepResearch` is the explicit per-mission flag, when present. */
export interface ResearchMission {
  id: string;
  userId: string;
  objective: string;
  conceptMarkdown: string;
  /** Explicit opt-in/opt-out that overrides {@link DEEP_RESEARCH_TRIGGER}; absent = use the regex. */
  deepResearch?: boolean | undefined;
}

/** True when `value` is a non-empty string that is not `enc:1:` ciphertext. */
export function isPlaintext(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && !value.startsWith(CIPHERTEXT_PREFIX);
}

/**
 * True when `trigger` matches the objective or the concept. Ciphertext fields are never tested:
 * encrypted text must not reach a regex, a query or a log.
 */
export function matchesTrigger(trigger: RegExp, mission: Pick<ResearchMission, 'objective' | 'conceptMarkdown'>): boolean {
  // A global or sticky regex keeps state between calls; a fresh copy makes every test independent.
  const regex = trigger.global || trigger.sticky ? new RegExp(trigger.source, trigger.flags.replace(/[gy]/g, '')) : trigger;
  return [mission.objective, mission.conceptMarkdown].some((field) => isPlaintext(field) && regex.test(field));
}

/** The first `max` characters of a query, for titles (60 characters of the objective, as the original did). */
export function shortTitle(text: string, max = 60): string {
  return text.slice(0, max);
}

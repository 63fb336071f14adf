/** What a NUL or a lone surrogate becomes: PostgreSQL's `text` and `jsonb` refuse both. */
export const REPLACEMENT_CHARACTER = '\uFFFD';

// A high surrogate not followed by a low one, or a low surrogate not preceded by a high one.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * `text` as valid UTF-8 without NUL: every NUL and every lone surrogate becomes U+FFFD, everything
 * else is kept. Text the runner writes to the log or sends to the LLM passes through here, so
 * PostgreSQL never refuses a write-back for its characters.
 */
export function sanitizeText(text: string): string {
  return text.replace(LONE_SURROGATE, REPLACEMENT_CHARACTER).replaceAll('\u0000', REPLACEMENT_CHARACTER);
}

/**
 * `value` with {@link sanitizeText} applied to every string in it, object keys included (a JSON
 * value as the LLM produced it; other values are returned as they are).
 */
export function sanitizeJson(value: unknown): unknown {
  if (typeof value === 'string') return sanitizeText(value);
  if (Array.isArray(value)) return value.map(sanitizeJson);
  if (typeof value !== 'object' || value === null) return value;
  const copy: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(value)) copy[sanitizeText(key)] = sanitizeJson(entry);
  return copy;
}

/**
 * `text` cut to at most `maxChars` characters (code points), never inside a surrogate pair;
 * `undefined` when it is not longer than that, so the caller knows whether it was cut.
 */
export function cutText(text: string, maxChars: number): string | undefined {
  // A code point is one or two UTF-16 units: a string of at most maxChars units fits.
  if (text.length <= maxChars) return undefined;
  let chars = 0;
  let end = 0;
  while (end < text.length) {
    if (chars === maxChars) return text.slice(0, end);
    const unit = text.charCodeAt(end);
    const pair = unit >= 0xd800 && unit <= 0xdbff && end + 1 < text.length && (text.charCodeAt(end + 1) & 0xfc00) === 0xdc00;
    end += pair ? 2 : 1;
    chars++;
  }
  return undefined;
}

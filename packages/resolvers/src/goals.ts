import type { InputResolver, ReplayRecord } from './ports.js';

/** The sync app id of the goal records (`goals`, the input ref's module; the original read `companion`, where no goal is ever synced). */
export const DEFAULT_GOALS_APP_ID = 'goals';

/** Collaborators of {@link createGoalsResolver}. */
export interface GoalsResolverDeps {
  replayRecord: ReplayRecord;
}

/** Options of {@link createGoalsResolver}. */
export interface GoalsResolverOptions {
  /** Sync app id of the goals table (default `goals`, docs/wire-contract.md#input-records). */
  appId?: string;
}

function display(value: unknown, fallback: string): string {
  if (value === undefined || value === null) return fallback;
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/**
 * The plaintext goals resolver: `Fortschritt: <currentValue ?? 0> / <target.value ?? "?">
 * (<period ?? "unbekannt">)`, titled by the goal's title (or `Goal`). Never reads a key.
 */
export function createGoalsResolver(deps: GoalsResolverDeps, options: GoalsResolverOptions = {}): InputResolver {
  const appId = options.appId ?? DEFAULT_GOALS_APP_ID;
  return async (ref, context) => {
    const record = await deps.replayRecord(context.userId, appId, ref.table, ref.id);
    if (!record) return null;
    const target = typeof record.target === 'object' && record.target !== null ? (record.target as Record<string, unknown>) : {};
    // A title that is still ciphertext must never reach the prompt.
    const title = typeof record.title === 'string' && !record.title.startsWith('enc:') ? record.title : 'Goal';
    return {
      id: ref.id,
      module: ref.module,
      table: ref.table,
      title,
      content: `Fortschritt: ${display(record.currentValue, '0')} / ${display(target.value, '?')} (${display(record.period, 'unbekannt')})`,
    };
  };
}

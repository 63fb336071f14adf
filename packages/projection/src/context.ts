import type { EventChannel, Logger, SqlClient } from '@mana-ai/core';
import type { ProjectionEvents } from './events.js';

/**
 * Collaborators shared by every part of the projection. No clock: every time compared across
 * instances (due, leases, stamps, the budget window) is the database's (DESIGN §4).
 */
export interface ProjectionContext {
  sql: SqlClient;
  events: EventChannel<ProjectionEvents>;
  logger: Logger;
  /** IANA zone of cadences whose mission names none or an unknown one (validated at creation). */
  defaultTimeZone: string;
}

/** `timestamptz` → `toISOString()` layout, rendered by Postgres (never via a JS Date). */
export const MILLISECOND_STAMP = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"';
/** `timestamptz` → ISO with all six fractional digits: the cursor's exact text form. */
export const MICROSECOND_STAMP = 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"';

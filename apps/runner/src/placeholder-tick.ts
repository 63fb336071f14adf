import { type Clock, type Logger, isoNow } from '@mana-ai/core';
import type { Sql } from 'postgres';
import type { TickFunction } from './scheduler.js';

/**
 * The tick used until the real pipeline is wired (a later issue): it only checks that the database
 * answers and returns empty TickStats. NO MISSIONS ARE PLANNED YET.
 */
export function createPlaceholderTick(deps: { sql: Sql; clock: Clock; logger: Logger }): TickFunction {
  let warned = false;
  return async () => {
    if (!warned) {
      warned = true;
      deps.logger.warn({}, 'mission planning is not wired yet: ticks only check the database');
    }
    const scannedAt = isoNow(deps.clock);
    await deps.sql`SELECT 1`;
    return { scannedAt, dueMissionCount: 0, plansProduced: 0, plansWrittenBack: 0, parseFailures: 0, errors: [], skipped: {} };
  };
}

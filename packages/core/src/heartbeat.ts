import type { Clock } from './clock.js';
import { describeError } from './errors.js';
import type { Logger } from './logger.js';
import type { MissionClaim, MissionStorePort } from './ports.js';
import type { EmitDispatcherEvent } from './run-events.js';

/** Options of {@link createHeartbeat}. */
export interface HeartbeatOptions {
  /** How often the held leases are extended; unset, 0 or not finite = never. */
  everyMs?: number | undefined;
  /**
   * A lease is renewed for at most this long after it was taken, so a run that hangs beyond any
   * timeout still lets its lease expire and another instance take over (default: no bound).
   */
  maxHoldMs?: number | undefined;
}

/** The lease heartbeat of one dispatcher: the claims it holds and a timer that renews them. */
export interface Heartbeat {
  /** Starts renewing `claim`'s lease (its hold bound counts from now). */
  hold(claim: MissionClaim): void;
  /** Stops renewing `claim`'s lease (written back, released, or handed back). */
  drop(claim: MissionClaim): void;
  /** Ends the timer and waits for a renewal in flight. */
  stop(): Promise<void>;
}

/**
 * Renews the leases of the claims it holds every `everyMs` through `store.renew`. Off when the
 * store cannot renew or no interval is set. A renewal failure is reported and retried at the next
 * beat; a lease found gone while its run goes on is reported as lost.
 */
export function createHeartbeat(
  deps: { store: MissionStorePort; clock: Clock; logger: Logger; emit: EmitDispatcherEvent },
  options: HeartbeatOptions,
): Heartbeat {
  const held = new Map<MissionClaim, number>();
  const every = options.everyMs;
  const renew = deps.store.renew?.bind(deps.store);
  if (!renew || every === undefined || !Number.isFinite(every) || every <= 0) {
    return { hold: () => {}, drop: () => {}, stop: async () => {} };
  }
  const maxHold = options.maxHoldMs ?? Number.POSITIVE_INFINITY;
  let inFlight: Promise<void> | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;

  const beat = async (): Promise<void> => {
    const now = deps.clock.now();
    const claims = [...held].filter(([, since]) => now - since < maxHold).map(([claim]) => claim);
    if (claims.length === 0) return;
    try {
      const renewed = new Set(await renew(claims));
      // A run that wrote back while the beat ran has ended its lease: finished, not lost.
      const lost = claims.filter((claim) => !renewed.has(claim) && held.has(claim)).length;
      deps.emit('leases.renewed', { requested: claims.length, held: renewed.size, lost });
      if (lost > 0) {
        deps.logger.warn({ requested: claims.length, lost }, 'lease heartbeat: leases of running missions ran out; those missions may be planned elsewhere too');
      }
    } catch (error) {
      const message = describeError(error);
      deps.emit('leases.renew-failed', { requested: claims.length, message });
      deps.logger.warn({ requested: claims.length, err: message }, 'lease heartbeat failed; it is retried at the next beat');
    }
  };

  const ensureTimer = (): void => {
    if (timer) return;
    timer = setInterval(() => {
      if (held.size === 0) {
        // Idle: no timer keeps the process awake until something is held again.
        clearInterval(timer);
        timer = undefined;
        return;
      }
      inFlight ??= beat().finally(() => {
        inFlight = undefined;
      });
    }, every);
    (timer as { unref?: () => void }).unref?.();
  };

  return {
    hold(claim) {
      held.set(claim, deps.clock.now());
      ensureTimer();
    },
    drop(claim) {
      held.delete(claim);
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      held.clear();
      await inFlight;
    },
  };
}

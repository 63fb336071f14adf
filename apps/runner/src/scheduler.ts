import { type Clock, type Logger, type TickStats, describeError, isoNow } from '@mana-ai/core';

/** What a tick function receives: `signal` aborts when shutdown gives up waiting for it. */
export interface TickContext {
  signal: AbortSignal;
}

/** One tick of the pipeline (the real one lives in a later issue; see README). */
export type TickFunction = (context: TickContext) => Promise<TickStats>;

/** Observers of tick runs, used for metrics. */
export interface SchedulerHooks {
  /** A non-overlapping tick started. */
  tickStarted?(): void;
  /** A non-overlapping tick ended (successfully or not) after `seconds`. */
  tickFinished?(seconds: number): void;
}

/** Collaborators of {@link createScheduler}. */
export interface SchedulerDeps {
  tick: TickFunction;
  clock: Clock;
  logger: Logger;
  hooks?: SchedulerHooks;
}

/** Options of {@link createScheduler}. */
export interface SchedulerOptions {
  /** Milliseconds between scheduled ticks. */
  intervalMs: number;
  /** Whether {@link Scheduler.start} schedules ticks at all. */
  enabled: boolean;
  /** How long {@link Scheduler.stop} waits for an in-flight tick. */
  shutdownTimeoutMs: number;
}

/** Runs ticks on an interval, never two at once in this instance. */
export interface Scheduler {
  /** Whether scheduling is enabled by configuration. */
  readonly enabled: boolean;
  /** True while the interval is scheduled (UPSTREAM's `running` in /health). */
  readonly running: boolean;
  /** True while a tick executes. */
  readonly busy: boolean;
  /** Runs a tick now and then every `intervalMs`; no-op when disabled or already started. */
  start(): void;
  /**
   * Runs one tick through the overlap guard: while another tick runs, resolves at once with
   * `errors: ['overlap-skipped']`. Rejects when the tick function throws.
   */
  runOnce(): Promise<TickStats>;
  /**
   * Stops scheduling and waits for an in-flight tick up to `shutdownTimeoutMs`, then aborts its
   * signal. Resolves true when no tick was left running.
   */
  stop(): Promise<boolean>;
}

/** TickStats with no work done, stamped now. */
export function emptyTickStats(clock: Clock, errors: string[] = []): TickStats {
  return { scannedAt: isoNow(clock), dueMissionCount: 0, plansProduced: 0, plansWrittenBack: 0, parseFailures: 0, errors, skipped: {} };
}

/** Creates a {@link Scheduler}; nothing runs until `start()` or `runOnce()`. */
export function createScheduler(deps: SchedulerDeps, options: SchedulerOptions): Scheduler {
  const { tick, clock, logger, hooks = {} } = deps;
  let timer: NodeJS.Timeout | undefined;
  let current: { promise: Promise<TickStats>; controller: AbortController } | undefined;

  function runOnce(): Promise<TickStats> {
    if (current) return Promise.resolve(emptyTickStats(clock, ['overlap-skipped']));
    const controller = new AbortController();
    const started = performance.now();
    hooks.tickStarted?.();
    const run = async (): Promise<TickStats> => {
      // Deferred so a synchronously throwing tick still passes through `finally` after `current` is set.
      await null;
      try {
        return await tick({ signal: controller.signal });
      } finally {
        current = undefined;
        hooks.tickFinished?.((performance.now() - started) / 1000);
      }
    };
    const promise = run();
    current = { promise, controller };
    return promise;
  }

  // Scheduled starts skipped while the current tick runs: logged once per overrunning tick, and the
  // count reported when it ends, rather than a warning at every interval.
  let overlapped = 0;
  async function scheduledTick(): Promise<void> {
    try {
      const stats = await runOnce();
      if (stats.errors.includes('overlap-skipped')) {
        overlapped += 1;
        if (overlapped === 1) {
          logger.warn({ intervalMs: options.intervalMs }, 'a tick is still running at the next interval: scheduled ticks are skipped until it ends');
        }
        return;
      }
      const skippedStarts = overlapped;
      overlapped = 0;
      const level = stats.dueMissionCount > 0 || stats.errors.length > 0 || skippedStarts > 0 ? 'info' : 'debug';
      logger[level]({ stats, ...(skippedStarts > 0 ? { skippedStarts } : {}) }, 'tick finished');
    } catch (error) {
      overlapped = 0;
      logger.error({ error: describeError(error) }, 'tick failed');
    }
  }

  return {
    enabled: options.enabled,
    get running() {
      return timer !== undefined;
    },
    get busy() {
      return current !== undefined;
    },
    start() {
      if (!options.enabled || timer) return;
      timer = setInterval(() => void scheduledTick(), options.intervalMs);
      void scheduledTick();
    },
    runOnce,
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      const inFlight = current;
      if (!inFlight) return true;
      logger.info({ timeoutMs: options.shutdownTimeoutMs }, 'waiting for the in-flight tick');
      let bound: NodeJS.Timeout | undefined;
      const finished = await Promise.race([
        inFlight.promise.then(
          () => true,
          () => true,
        ),
        new Promise<false>((resolve) => {
          bound = setTimeout(() => resolve(false), options.shutdownTimeoutMs);
        }),
      ]);
      clearTimeout(bound);
      if (!finished) {
        inFlight.controller.abort();
        logger.warn({ timeoutMs: options.shutdownTimeoutMs }, 'in-flight tick abandoned at shutdown');
      }
      return finished;
    },
  };
}

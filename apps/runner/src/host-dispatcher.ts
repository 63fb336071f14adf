import {
  type Clock,
  type Dispatcher,
  type DispatcherEvents,
  type EventChannel,
  type TickStats,
  emptyTickStats as emptyStatsAt,
  isoNow,
} from '@mana-ai/core';

/** TickStats with no work done, stamped with `clock`'s now (plus `errors`): core's, for a clock. */
export function emptyTickStats(clock: Clock, errors: string[] = []): TickStats {
  return emptyStatsAt(isoNow(clock), errors);
}

/**
 * A dispatcher that answers each pass with `pass()` and dispatches nothing on its own: the host's
 * routes, shutdown and metrics tested without the pipeline. Like the real one it answers
 * `overlap-skipped` while a pass is open, `stop()` waits up to its timeout for that pass, and with
 * `events` each pass emits `tick.started`/`tick.finished` (the pass metrics).
 */
export function createPassDispatcher(
  pass: (context: { signal: AbortSignal }) => Promise<TickStats>,
  clock: Clock,
  events?: EventChannel<DispatcherEvents>,
): Dispatcher {
  let current: { promise: Promise<TickStats>; controller: AbortController } | undefined;
  let started = false;
  let stopping = false;
  let sequence = 0;
  return {
    get started() {
      return started;
    },
    get inFlight() {
      return current ? 1 : 0;
    },
    get passing() {
      return current !== undefined;
    },
    async start() {
      if (!stopping) started = true;
    },
    runPass() {
      if (current) return Promise.resolve(emptyTickStats(clock, ['overlap-skipped']));
      if (stopping) return Promise.resolve(emptyTickStats(clock, ['stopping']));
      const controller = new AbortController();
      sequence += 1;
      const passId = `pass-${sequence}`;
      const started = clock.now();
      events?.emit('tick.started', { passId, scannedAt: isoNow(clock) });
      const promise = (async () => {
        await null;
        try {
          const stats = await pass({ signal: controller.signal });
          events?.emit('tick.finished', { passId, stats, durationMs: clock.now() - started });
          return stats;
        } finally {
          current = undefined;
        }
      })();
      current = { promise, controller };
      return promise;
    },
    async stop(options = {}) {
      stopping = true;
      started = false;
      const open = current;
      if (!open) return true;
      let bound: ReturnType<typeof setTimeout> | undefined;
      const finished = await Promise.race([
        open.promise.then(
          () => true,
          () => true,
        ),
        new Promise<false>((resolve) => {
          bound = setTimeout(() => resolve(false), options.timeoutMs ?? 30_000);
        }),
      ]);
      clearTimeout(bound);
      if (!finished) open.controller.abort(new Error('shutdown'));
      return finished;
    },
  };
}

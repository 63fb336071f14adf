import { type Clock, isoNow } from './clock.js';
import { type DatabaseClock, createDatabaseClock } from './database-clock.js';
import type { TickStats } from './domain.js';
import { describeError } from './errors.js';
import type { EventChannel } from './events.js';
import { type Heartbeat, createHeartbeat } from './heartbeat.js';
import { type Logger, noopLogger } from './logger.js';
import { type MissionRunContext, type MissionRunState, createMissionRunState, runIds, runMission } from './mission-run.js';
import type { InputsPort, MissionClaim, MissionStorePort, PlannerPort, ResearchPort, StoreWatch } from './ports.js';
import type { DispatcherEvents, EmitDispatcherEvent, RunOutcome, WakeReason } from './run-events.js';

/** Everything a dispatcher needs. */
export interface DispatcherPorts {
  store: MissionStorePort;
  inputs: InputsPort;
  planner: PlannerPort;
  research?: ResearchPort | undefined;
  /** The instance's clock: drives local timers only. */
  clock: Clock;
  logger?: Logger | undefined;
  events?: EventChannel<DispatcherEvents> | undefined;
}

/** Options of {@link createDispatcher}; every one has a default. */
export interface DispatcherOptions {
  /** Missions in flight at once on this instance (default 8). */
  concurrency?: number;
  /** The longest the dispatcher sleeps before it refreshes and claims anyway (default 5 s). */
  maxSleepMs?: number;
  /** How often the store is probed for new log rows when it does not signal them (default 1 s). */
  probeEveryMs?: number;
  /** How long a failed or skipped mission stays leased before it is tried again (default 60 s). */
  retryAfterMs?: number;
  /** How soon to claim again when due missions are held back (default 1 s); after failed refreshes or claims it doubles per failure up to `maxSleepMs`. */
  heldBackRetryMs?: number;
  /** Lease heartbeat interval (a third of the lease is a good value); unset = leases are never extended. */
  renewEveryMs?: number | undefined;
  /** How long after its claim a run's lease may be renewed (default: no bound). */
  maxLeaseHoldMs?: number | undefined;
  /** One run's wall-time bound: past it the run is aborted (default 10 minutes). */
  maxRunMs?: number;
  /** Missions one pass (`runPass`) claims at most (default 10,000). */
  maxMissionsPerPass?: number;
  /** Prefix of this instance's run ids (default: random). */
  runIdPrefix?: string;
}

/** Defaults of {@link DispatcherOptions}. */
export const DISPATCHER_DEFAULTS = {
  concurrency: 8,
  maxSleepMs: 5000,
  probeEveryMs: 1000,
  retryAfterMs: 60_000,
  heldBackRetryMs: 1000,
  maxRunMs: 600_000,
  maxMissionsPerPass: 10_000,
} as const;

/**
 * The continuous mission dispatcher of one instance. Up to `concurrency` missions run at once; a
 * slot that frees claims the next due mission at once. It wakes for the earliest due mission (on
 * database time), for the store's signals (new log rows, snapshots another instance refreshed), for a
 * freed slot, and for {@link Dispatcher.runPass}; it never sleeps longer than `maxSleepMs`.
 */
export interface Dispatcher {
  /** Starts dispatching continuously (subscribes to the store's signals); no-op when started. */
  start(): Promise<void>;
  /**
   * One pass now: refresh the snapshots, claim every due mission (up to `maxMissionsPerPass`, as
   * slots free), and resolve with the TickStats of the missions this pass claimed once they ended.
   * While another pass is open it resolves at once with `errors: ['overlap-skipped']`.
   */
  runPass(): Promise<TickStats>;
  /**
   * Stops claiming, waits up to `timeoutMs` for the runs in flight, then aborts the rest (their
   * leases are handed back). Resolves true when every run ended within the bound.
   */
  stop(options?: { timeoutMs?: number }): Promise<boolean>;
  /** True between `start()` and `stop()`. */
  readonly started: boolean;
  /** Runs in flight now. */
  readonly inFlight: number;
  /** True while a pass is open. */
  readonly passing: boolean;
}

interface ActiveRun {
  state: MissionRunState;
  controller: AbortController;
  done: Promise<void>;
}

interface PassState {
  id: string;
  /** `tick.started` was emitted (in the pass's first cycle, once the stamp clock is calibrated). */
  announced: boolean;
  startedMs: number;
  stats: TickStats;
  claimed: number;
  /** No further claims for this pass: the due set was drained, a bound was hit, or claiming failed. */
  claimsDone: boolean;
  runs: Set<string>;
  /** Runs of a pass outside continuous mode that wrote nothing: handed back when the pass ends. */
  unfinished: MissionClaim[];
  resolve(stats: TickStats): void;
}

/** The dispatcher's mutable state, in one place. */
interface DispatcherState {
  started: boolean;
  stopping: boolean;
  runs: Map<string, ActiveRun>;
  refreshWanted: boolean;
  lastRefreshMs: number;
  pumping: boolean;
  /** Settles when the cycles running now have ended. */
  pumped: Promise<void>;
  reasons: Set<WakeReason>;
  /** The last claim came back short: nothing more was claimable then. */
  drained: boolean;
  /** Missions are due but were not claimable (agent limits, rows other claimers lock, claim errors). */
  heldBack: boolean;
  /** Refreshes and claims that failed in a row: the retry backs off (a database outage is not polled every second). */
  failures: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  probeTimer: ReturnType<typeof setInterval> | undefined;
  watch: StoreWatch | undefined;
  pass: PassState | undefined;
  sequence: number;
}

/** How long stop() waits for aborted runs to hand their leases back. */
const ABORT_GRACE_MS = 2000;

function positive(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isFinite(value) && value > 0 ? value : fallback;
}

/** TickStats of a pass that did no work, stamped `scannedAt` (plus `errors`, e.g. `overlap-skipped`). */
export function emptyTickStats(scannedAt: string, errors: string[] = []): TickStats {
  return { scannedAt, dueMissionCount: 0, plansProduced: 0, plansWrittenBack: 0, parseFailures: 0, errors, skipped: {} };
}

function randomPrefix(): string {
  const bytes = new Uint8Array(4);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

/** Adds a run's outcome to its pass's TickStats (the original's fields, skip counts by reason). */
function countOutcome(stats: TickStats, missionId: string, outcome: RunOutcome): void {
  switch (outcome.kind) {
    case 'written':
      stats.plansProduced += 1;
      if (outcome.written) stats.plansWrittenBack += 1;
      break;
    case 'skipped':
      stats.skipped[outcome.reason] = (stats.skipped[outcome.reason] ?? 0) + 1;
      break;
    case 'plan-failed':
      stats.parseFailures += 1;
      break;
    case 'error':
      stats.errors.push(`mission=${missionId}: ${outcome.message}`);
      break;
  }
}

/** Creates a {@link Dispatcher}; nothing runs until `start()` or `runPass()`. */
export function createDispatcher(ports: DispatcherPorts, options: DispatcherOptions = {}): Dispatcher {
  const logger = ports.logger ?? noopLogger;
  const emit: EmitDispatcherEvent = (name, payload) => ports.events?.emit(name, payload);
  const concurrency = Math.max(1, Math.floor(positive(options.concurrency, DISPATCHER_DEFAULTS.concurrency)));
  const maxSleepMs = positive(options.maxSleepMs, DISPATCHER_DEFAULTS.maxSleepMs);
  const probeEveryMs = positive(options.probeEveryMs, DISPATCHER_DEFAULTS.probeEveryMs);
  const retryAfterMs = positive(options.retryAfterMs, DISPATCHER_DEFAULTS.retryAfterMs);
  const heldBackRetryMs = positive(options.heldBackRetryMs, DISPATCHER_DEFAULTS.heldBackRetryMs);
  const maxRunMs = positive(options.maxRunMs, DISPATCHER_DEFAULTS.maxRunMs);
  const maxMissionsPerPass = Math.floor(positive(options.maxMissionsPerPass, DISPATCHER_DEFAULTS.maxMissionsPerPass));
  const prefix = options.runIdPrefix ?? randomPrefix();
  const { store, clock } = ports;
  const stampClock: DatabaseClock = createDatabaseClock(clock, store.databaseNow?.bind(store));
  const heartbeat: Heartbeat = createHeartbeat(
    { store, clock, logger, emit },
    { everyMs: options.renewEveryMs, maxHoldMs: options.maxLeaseHoldMs },
  );
  const state: DispatcherState = {
    started: false,
    stopping: false,
    runs: new Map(),
    refreshWanted: false,
    lastRefreshMs: Number.NEGATIVE_INFINITY,
    pumping: false,
    pumped: Promise.resolve(),
    reasons: new Set(),
    drained: false,
    heldBack: false,
    failures: 0,
    timer: undefined,
    probeTimer: undefined,
    watch: undefined,
    pass: undefined,
    sequence: 0,
  };
  const runContext: MissionRunContext = {
    store,
    inputs: ports.inputs,
    planner: ports.planner,
    research: ports.research,
    stampClock,
    logger,
    emit,
    onWriteStart: (run) => heartbeat.drop(run.claim),
  };

  const free = (): number => concurrency - state.runs.size;
  const claiming = (): boolean => !state.stopping && (state.started || (state.pass !== undefined && !state.pass.claimsDone));

  function finishPassIfDone(): void {
    const pass = state.pass;
    if (!pass?.claimsDone || pass.runs.size > 0) return;
    state.pass = undefined;
    const unfinished = pass.unfinished.splice(0);
    for (const claim of unfinished) heartbeat.drop(claim);
    void Promise.all(unfinished.map((claim) => handBack(claim, undefined))).then(() => {
      emit('tick.finished', { passId: pass.id, stats: pass.stats, durationMs: clock.now() - pass.startedMs });
      pass.resolve(pass.stats);
    });
  }

  /** Ends the open pass with the runs that ignored the abort counted as errors: its caller gets an answer. */
  function abandonPass(): void {
    const pass = state.pass;
    if (!pass) return;
    for (const runId of pass.runs) {
      const run = state.runs.get(runId);
      pass.stats.errors.push(`mission=${run?.state.claim.mission.id ?? runId}: abandoned at shutdown`);
    }
    pass.runs.clear();
    pass.claimsDone = true;
    finishPassIfDone();
  }

  async function handBack(claim: MissionClaim, retry: number | undefined): Promise<void> {
    try {
      await store.release(claim, retry === undefined ? undefined : { retryAfterMs: retry });
    } catch (error) {
      logger.warn({ missionId: claim.mission.id, userId: claim.mission.userId, err: describeError(error) }, 'lease hand-back failed; it will expire');
    }
  }

  async function endRun(run: ActiveRun, outcome: RunOutcome): Promise<void> {
    const { claim, passId } = run.state;
    const pass = state.pass && state.pass.id === passId ? state.pass : undefined;
    if (outcome.kind !== 'written') {
      if (!state.started && pass) {
        // A pass outside continuous mode hands failed missions back when it ends: released now, the
        // mission would be due again and claimed by this very pass.
        pass.unfinished.push(claim);
      } else {
        heartbeat.drop(claim);
        // Held for a while rather than released: a mission that failed is not retried at once.
        await handBack(claim, state.stopping ? undefined : retryAfterMs);
      }
    } else {
      heartbeat.drop(claim);
    }
    state.runs.delete(run.state.runId);
    if (pass) {
      countOutcome(pass.stats, claim.mission.id, outcome);
      pass.runs.delete(run.state.runId);
    }
    emit('mission.finished', { ...runIds(run.state), outcome: outcome.kind, durationMs: clock.now() - run.state.startedAtMs });
    finishPassIfDone();
    if (claiming() && (!state.drained || state.heldBack || state.pass !== undefined)) wake('slot');
  }

  function launch(claim: MissionClaim): void {
    state.sequence += 1;
    const runId = `${prefix}-${state.sequence}`;
    const pass = state.pass && !state.pass.claimsDone ? state.pass : undefined;
    const runState = createMissionRunState({ runId, claim, passId: pass?.id ?? null, startedAtMs: clock.now() });
    const controller = new AbortController();
    const bound = setTimeout(() => controller.abort(new Error(`run exceeded ${maxRunMs} ms`)), maxRunMs);
    (bound as { unref?: () => void }).unref?.();
    heartbeat.hold(claim);
    if (pass) {
      pass.runs.add(runId);
      pass.claimed += 1;
      pass.stats.dueMissionCount += 1;
    }
    const run: ActiveRun = { state: runState, controller, done: Promise.resolve() };
    state.runs.set(runId, run);
    run.done = runMission(runContext, runState, controller.signal)
      .finally(() => clearTimeout(bound))
      .then((outcome) => endRun(run, outcome));
  }

  async function refresh(): Promise<void> {
    state.refreshWanted = false;
    state.lastRefreshMs = clock.now();
    try {
      const summary = await store.refresh();
      emit('tick.refreshed', summary);
      if (summary.rowsApplied > 0) logger.info({ ...summary }, 'snapshot refresh applied rows');
    } catch (error) {
      const message = describeError(error);
      emit('tick.failed', { stage: 'refresh', message });
      logger.error({ err: message }, 'snapshot refresh failed');
      const pass = state.pass;
      if (pass && !pass.claimsDone) {
        // A pass reports the failure and claims nothing on snapshots it could not bring up to date.
        pass.stats.errors.push(`refresh: ${message}`);
        pass.claimsDone = true;
      }
      state.heldBack = true;
      state.failures += 1;
    }
  }

  /** Claims into the free slots until they are full or nothing more is claimable; returns how many. */
  async function fill(): Promise<number> {
    let claimed = 0;
    while (claiming() && free() > 0) {
      const pass = state.pass && !state.pass.claimsDone ? state.pass : undefined;
      const limit = Math.min(free(), pass ? maxMissionsPerPass - pass.claimed : free());
      if (limit <= 0) {
        if (pass) pass.claimsDone = true;
        break;
      }
      let batch: MissionClaim[];
      try {
        batch = await store.claimDue({ limit });
      } catch (error) {
        const message = describeError(error);
        emit('tick.failed', { stage: 'claim', message });
        logger.error({ err: message }, 'claiming due missions failed');
        if (pass) {
          pass.stats.errors.push(`claim: ${message}`);
          pass.claimsDone = true;
        }
        state.heldBack = true;
        state.failures += 1;
        break;
      }
      state.failures = 0;
      for (const claim of batch) launch(claim);
      claimed += batch.length;
      if (batch.length < limit) {
        state.drained = true;
        if (pass) pass.claimsDone = true;
        break;
      }
      state.drained = false;
    }
    return claimed;
  }

  /**
   * Sets the timer for the next wake-up: the earliest due mission, a retry, or the longest sleep.
   * `knownNextDue` is a due time this cycle has just read (not read again).
   */
  async function arm(knownNextDue?: number | null): Promise<void> {
    if (!state.started || state.stopping) return;
    let delay = maxSleepMs - (clock.now() - state.lastRefreshMs);
    let reason: WakeReason = 'timer';
    if (free() > 0) {
      if (state.heldBack) {
        // After failures the retry doubles (1 s, 2 s, 4 s, …) up to the longest sleep.
        const backoff = state.failures > 0 ? heldBackRetryMs * 2 ** (state.failures - 1) : heldBackRetryMs;
        delay = Math.min(delay, backoff);
        reason = 'retry';
      } else if (knownNextDue !== undefined || store.nextDueInMs) {
        const next = knownNextDue !== undefined ? knownNextDue : await store.nextDueInMs!().catch(() => null);
        if (next !== null && next <= 0) {
          // Due but not claimed: held back by an agent's limit or rows other claimers hold.
          state.heldBack = true;
          delay = Math.min(delay, heldBackRetryMs);
          reason = 'retry';
        } else if (next !== null && next < delay) {
          // A little late rather than early: woken before the due time, the claim finds nothing.
          delay = next + 5;
        }
      }
    }
    if (state.timer) clearTimeout(state.timer);
    state.timer = setTimeout(
      () => {
        state.timer = undefined;
        wake(reason);
      },
      Math.max(0, delay),
    );
  }

  async function cycle(reasons: WakeReason[]): Promise<void> {
    const startedMs = clock.now();
    if (state.timer) clearTimeout(state.timer);
    state.timer = undefined;
    await stampClock.calibrate();
    const pass = state.pass;
    if (pass && !pass.announced) {
      pass.announced = true;
      pass.stats.scannedAt = isoNow(stampClock);
      emit('tick.started', { passId: pass.id, scannedAt: pass.stats.scannedAt });
    }
    // Only the longest sleep ran out while the store's signals are live: they carry every new row and
    // every peer's refresh, so check cheaply that none was missed instead of refreshing and claiming.
    const safetyWake = !pass && !state.refreshWanted && state.watch?.notifying === true && reasons.every((reason) => reason === 'timer');
    if (safetyWake) await checkMissedChanges();
    else if (clock.now() - state.lastRefreshMs >= maxSleepMs) state.refreshWanted = true;
    const refreshed = state.refreshWanted;
    // Claiming again clears the held-back state; it is set anew when the claim still comes back short.
    state.heldBack = false;
    if (refreshed) await refresh();
    // A safety wake claims only when the store says a mission is claimable now.
    const nextDue = safetyWake && !refreshed && free() > 0 && store.nextDueInMs ? await store.nextDueInMs().catch(() => undefined) : undefined;
    const nothingDue = nextDue === null || (nextDue !== undefined && nextDue > 0);
    const claimed = nothingDue ? 0 : await fill();
    finishPassIfDone();
    await arm(nothingDue ? nextDue : undefined);
    emit('dispatcher.cycle', { reasons, refreshed, claimed, inFlight: state.runs.size, durationMs: clock.now() - startedMs });
  }

  /** Runs cycles until no wake-up is pending; a wake during a cycle runs one more. */
  function wake(reason: WakeReason): void {
    state.reasons.add(reason);
    if (state.pumping) return;
    state.pumping = true;
    state.pumped = (async () => {
      try {
        while (state.reasons.size > 0 && !state.stopping) {
          const reasons = [...state.reasons];
          state.reasons.clear();
          try {
            await cycle(reasons);
          } catch (error) {
            logger.error({ err: describeError(error) }, 'dispatcher cycle failed');
          }
        }
      } finally {
        state.pumping = false;
        state.reasons.clear();
      }
    })();
  }

  /** One cheap probe for rows the signals missed (a NOTIFY lost while reconnecting); refreshes when it finds some. */
  async function checkMissedChanges(): Promise<void> {
    state.lastRefreshMs = clock.now();
    const pending = store.hasPendingChanges ? await store.hasPendingChanges().catch(() => true) : true;
    if (pending) state.refreshWanted = true;
  }

  function onSignal(signal: 'changes' | 'due' | 'probe'): void {
    if (signal !== 'due') state.refreshWanted = true;
    wake(signal);
  }

  function startProbe(): void {
    let probing = false;
    state.probeTimer = setInterval(() => {
      if (probing || state.pumping || !store.hasPendingChanges) return;
      probing = true;
      store
        .hasPendingChanges()
        .then(
          (pending) => {
            if (pending) onSignal('probe');
          },
          (error: unknown) => logger.debug({ err: describeError(error) }, 'change probe failed'),
        )
        .finally(() => {
          probing = false;
        });
    }, probeEveryMs);
  }

  return {
    get started() {
      return state.started;
    },
    get inFlight() {
      return state.runs.size;
    },
    get passing() {
      return state.pass !== undefined;
    },
    async start() {
      if (state.started || state.stopping) return;
      state.started = true;
      if (store.watch) {
        try {
          state.watch = await store.watch(onSignal);
        } catch (error) {
          logger.warn({ err: describeError(error) }, 'store signals unavailable; probing for new rows instead');
        }
      }
      if (!state.watch?.notifying && store.hasPendingChanges) startProbe();
      state.refreshWanted = true;
      wake('start');
    },
    runPass() {
      const scannedAt = isoNow(stampClock);
      if (state.pass) return Promise.resolve(emptyTickStats(scannedAt, ['overlap-skipped']));
      if (state.stopping) return Promise.resolve(emptyTickStats(scannedAt, ['stopping']));
      return new Promise<TickStats>((resolve) => {
        state.sequence += 1;
        const pass: PassState = {
          id: `${prefix}-pass-${state.sequence}`,
          announced: false,
          startedMs: clock.now(),
          stats: emptyTickStats(scannedAt),
          claimed: 0,
          claimsDone: false,
          runs: new Set(),
          unfinished: [],
          resolve,
        };
        state.pass = pass;
        state.refreshWanted = true;
        wake('pass');
      });
    },
    async stop(stopOptions = {}) {
      if (state.stopping) return true;
      state.stopping = true;
      state.started = false;
      if (state.timer) clearTimeout(state.timer);
      if (state.probeTimer) clearInterval(state.probeTimer);
      state.timer = undefined;
      state.probeTimer = undefined;
      if (state.pass) state.pass.claimsDone = true;
      const watch = state.watch;
      state.watch = undefined;
      await watch?.close().catch(() => {});
      const timeoutMs = stopOptions.timeoutMs ?? 30_000;
      // The cycle in flight (a pass's refresh or claim) ends first, then every run.
      const all = (): Promise<unknown> => state.pumped.then(() => Promise.all([...state.runs.values()].map((run) => run.done)));
      let bound: ReturnType<typeof setTimeout> | undefined;
      const finished = await Promise.race([
        all().then(() => true),
        new Promise<false>((resolve) => {
          bound = setTimeout(() => resolve(false), timeoutMs);
        }),
      ]);
      clearTimeout(bound);
      if (!finished) {
        logger.warn({ timeoutMs, inFlight: state.runs.size }, 'runs still in flight at shutdown are aborted');
        for (const run of state.runs.values()) run.controller.abort(new Error('shutdown'));
        // An aborted run hands its lease back; one that ignores the abort is left behind (its lease expires).
        let grace: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([all(), new Promise((resolve) => (grace = setTimeout(resolve, ABORT_GRACE_MS)))]);
        clearTimeout(grace);
        abandonPass();
      }
      finishPassIfDone();
      await heartbeat.stop();
      return finished;
    },
  };
}

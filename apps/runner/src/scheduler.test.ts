import { type Logger, type TickStats, createManualClock, noopLogger } from '@mana-ai/core';
import { describe, expect, it } from 'vitest';
import { type TickContext, createScheduler, emptyTickStats } from './scheduler.js';

const clock = createManualClock('2025-03-30T00:00:00.000Z');

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

function options(overrides: Partial<{ intervalMs: number; enabled: boolean; shutdownTimeoutMs: number }> = {}) {
  return { intervalMs: 60_000, enabled: true, shutdownTimeoutMs: 1000, ...overrides };
}

describe('createScheduler', () => {
  it('skips an overlapping run with overlap-skipped when a tick is in flight', async () => {
    const gate = deferred<TickStats>();
    let calls = 0;
    let started = 0;
    let finished = 0;
    const scheduler = createScheduler(
      {
        tick: () => {
          calls += 1;
          return gate.promise;
        },
        clock,
        logger: noopLogger,
        hooks: { tickStarted: () => (started += 1), tickFinished: () => (finished += 1) },
      },
      options({ enabled: false }),
    );
    const first = scheduler.runOnce();
    expect(scheduler.busy).toBe(true);
    const second = await scheduler.runOnce();
    expect(second).toEqual({ ...emptyTickStats(clock), errors: ['overlap-skipped'] });
    gate.resolve({ ...emptyTickStats(clock), dueMissionCount: 3 });
    expect((await first).dueMissionCount).toBe(3);
    expect(scheduler.busy).toBe(false);
    expect({ calls, started, finished }).toEqual({ calls: 1, started: 1, finished: 1 });
    await expect(scheduler.runOnce()).resolves.toMatchObject({ errors: [] });
    expect(calls).toBe(2);
  });

  it('releases the guard and rejects when the tick throws, even synchronously', async () => {
    const scheduler = createScheduler(
      {
        tick: () => {
          throw new Error('boom');
        },
        clock,
        logger: noopLogger,
      },
      options(),
    );
    await expect(scheduler.runOnce()).rejects.toThrow('boom');
    expect(scheduler.busy).toBe(false);
    await expect(scheduler.runOnce()).rejects.toThrow('boom');
  });

  it('runs at once and then on the interval when started, and reports running until stopped', async () => {
    let calls = 0;
    const scheduler = createScheduler(
      {
        tick: async () => {
          calls += 1;
          return emptyTickStats(clock);
        },
        clock,
        logger: noopLogger,
      },
      options({ intervalMs: 100 }),
    );
    expect(scheduler.running).toBe(false);
    scheduler.start();
    scheduler.start();
    expect(scheduler.running).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 350));
    await scheduler.stop();
    expect(scheduler.running).toBe(false);
    expect(calls).toBeGreaterThanOrEqual(3);
    const after = calls;
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(calls).toBe(after);
  });

  it('warns once per overrunning tick, not at every skipped interval, and reports the skipped starts', async () => {
    const lines: Array<{ level: string; message: string; context: Record<string, unknown> }> = [];
    const record =
      (level: string) =>
      (context: unknown, message?: unknown): void => {
        lines.push({ level, message: typeof message === 'string' ? message : '', context: context as Record<string, unknown> });
      };
    const logger: Logger = { ...noopLogger, debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };
    const gates = [deferred<TickStats>(), deferred<TickStats>()];
    let calls = 0;
    const scheduler = createScheduler({ tick: () => gates[calls++]?.promise ?? Promise.resolve(emptyTickStats(clock)), clock, logger }, options({ intervalMs: 20 }));
    scheduler.start();
    await new Promise((resolve) => setTimeout(resolve, 200));
    gates[0]!.resolve(emptyTickStats(clock));
    await new Promise((resolve) => setTimeout(resolve, 120));
    gates[1]!.resolve(emptyTickStats(clock));
    await scheduler.stop();
    const overran = lines.filter((line) => line.message.startsWith('a tick is still running'));
    const finished = lines.filter((line) => line.message === 'tick finished');
    // One warning per tick that swallowed scheduled starts, however many it swallowed.
    expect(overran.length).toBe(finished.filter((line) => Number(line.context.skippedStarts ?? 0) > 0).length);
    expect(overran.every((line) => line.level === 'warn')).toBe(true);
    expect(finished[0]?.level).toBe('info');
    expect(finished[0]?.context.skippedStarts).toBeGreaterThanOrEqual(2);
  });

  it('schedules nothing when disabled', async () => {
    let calls = 0;
    const scheduler = createScheduler(
      {
        tick: async () => {
          calls += 1;
          return emptyTickStats(clock);
        },
        clock,
        logger: noopLogger,
      },
      options({ enabled: false, intervalMs: 100 }),
    );
    scheduler.start();
    expect(scheduler.running).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(calls).toBe(0);
  });

  it('waits for the in-flight tick when stopped within the bound', async () => {
    const scheduler = createScheduler(
      {
        tick: () => new Promise((resolve) => setTimeout(() => resolve(emptyTickStats(clock)), 100)),
        clock,
        logger: noopLogger,
      },
      options({ shutdownTimeoutMs: 2000 }),
    );
    const run = scheduler.runOnce();
    const startedAt = performance.now();
    await expect(scheduler.stop()).resolves.toBe(true);
    expect(scheduler.busy).toBe(false);
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(50);
    await expect(run).resolves.toMatchObject({ errors: [] });
  });

  it('aborts the tick signal and returns false when the tick outlives the bound', async () => {
    let seen: TickContext | undefined;
    const scheduler = createScheduler(
      {
        tick: (context) => {
          seen = context;
          return new Promise((resolve) => context.signal.addEventListener('abort', () => resolve(emptyTickStats(clock, ['aborted']))));
        },
        clock,
        logger: noopLogger,
      },
      options({ shutdownTimeoutMs: 50 }),
    );
    const run = scheduler.runOnce();
    await expect(scheduler.stop()).resolves.toBe(false);
    expect(seen?.signal.aborted).toBe(true);
    await expect(run).resolves.toMatchObject({ errors: ['aborted'] });
  });
});

import { createManualClock } from '@mana-ai/core';
import { describe, expect, it } from 'vitest';
import type { DeepResearchAnswer } from './deep-research.js';
import {
  type CompletedResearchState,
  IDLE_RESEARCH_STATE,
  type ResearchFailure,
  type ResearchState,
  type RunningResearchState,
  createResearchMachine,
} from './research-machine.js';

const T0 = Date.parse('2026-04-21T06:00:00.000Z');
const MINUTE = 60_000;

const answer: DeepResearchAnswer = {
  answer: 'Die Antwort.',
  citations: [{ url: 'https://a.example', title: 'A' }],
};

function setup(options: { maxJobAgeMs?: number; maxFailedPolls?: number } = {}) {
  const clock = createManualClock(T0);
  const machine = createResearchMachine({ clock }, { maxJobAgeMs: 60 * MINUTE, maxFailedPolls: 3, ...options });
  return { clock, machine };
}

const running: RunningResearchState = {
  phase: 'running',
  taskId: 'task-1',
  providerId: 'gemini-deep-research-max',
  submittedAt: T0,
  lastPolledAt: null,
  remoteStatus: 'queued',
  failedPolls: 0,
};

const completed: CompletedResearchState = {
  phase: 'completed',
  taskId: 'task-1',
  providerId: 'gemini-deep-research-max',
  submittedAt: T0,
  lastPolledAt: T0 + 5 * MINUTE,
  completedAt: T0 + 5 * MINUTE,
  answer,
};

const http = (status: number): ResearchFailure => ({ code: 'RESEARCH_HTTP_STATUS', kind: 'http-status', status });
const timeout: ResearchFailure = { code: 'RESEARCH_TIMEOUT', kind: 'timeout' };

describe('createResearchMachine', () => {
  it('asks for a submit when idle and deep research is requested', () => {
    const { machine } = setup();
    expect(machine.transition(IDLE_RESEARCH_STATE, { type: 'tick', deepRequested: true })).toEqual({
      state: IDLE_RESEARCH_STATE,
      effects: [{ type: 'submit' }],
    });
  });

  it('falls back to shallow research when idle and deep research is not requested', () => {
    const { machine } = setup();
    expect(machine.transition(IDLE_RESEARCH_STATE, { type: 'tick', deepRequested: false })).toEqual({
      state: IDLE_RESEARCH_STATE,
      effects: [{ type: 'shallow', reason: 'deep-not-requested' }],
    });
  });

  it('saves a running job stamped with the clock and skips the tick when the submit succeeds', () => {
    const { machine, clock } = setup();
    clock.advance(1234);
    const result = machine.transition(IDLE_RESEARCH_STATE, {
      type: 'submitted',
      submission: { taskId: 'task-9', status: 'running', providerId: 'gemini-deep-research-max' },
    });
    const expected: RunningResearchState = {
      phase: 'running',
      taskId: 'task-9',
      providerId: 'gemini-deep-research-max',
      submittedAt: T0 + 1234,
      lastPolledAt: null,
      remoteStatus: 'running',
      failedPolls: 0,
    };
    expect(result.state).toEqual(expected);
    expect(result.effects).toEqual([
      { type: 'save', state: expected },
      { type: 'notify', notice: { kind: 'submitted', taskId: 'task-9', providerId: 'gemini-deep-research-max' } },
      {
        type: 'notify',
        notice: {
          kind: 'pending-skip',
          taskId: 'task-9',
          providerId: 'gemini-deep-research-max',
          remoteStatus: 'running',
          failedPolls: 0,
        },
      },
      { type: 'skip' },
    ]);
  });

  it('stays idle and falls back to shallow research when the submit fails', () => {
    const { machine } = setup();
    const failure = http(500);
    expect(machine.transition(IDLE_RESEARCH_STATE, { type: 'submit-failed', failure })).toEqual({
      state: IDLE_RESEARCH_STATE,
      effects: [
        { type: 'notify', notice: { kind: 'submit-failed', failure } },
        { type: 'shallow', reason: 'submit-failed' },
      ],
    });
  });

  it('asks for a poll when a job is running, whether or not deep research is still requested', () => {
    const { machine } = setup();
    for (const deepRequested of [true, false]) {
      expect(machine.transition(running, { type: 'tick', deepRequested })).toEqual({
        state: running,
        effects: [{ type: 'poll', taskId: 'task-1' }],
      });
    }
  });

  it('touches the job, resets failed polls and skips the tick when the poll says queued or running', () => {
    const { machine, clock } = setup();
    clock.advance(10 * MINUTE);
    const before: RunningResearchState = { ...running, failedPolls: 2 };
    for (const status of ['queued', 'running'] as const) {
      const result = machine.transition(before, {
        type: 'polled',
        poll: { taskId: 'task-1', status, providerId: 'gemini-deep-research-max' },
      });
      const next = { ...running, remoteStatus: status, lastPolledAt: T0 + 10 * MINUTE, failedPolls: 0 };
      expect(result.state).toEqual(next);
      expect(result.effects.map((effect) => effect.type)).toEqual(['save', 'notify', 'skip']);
      expect(result.effects[0]).toEqual({ type: 'save', state: next });
    }
    expect(before.failedPolls).toBe(2);
  });

  it('keeps the answer and injects it when the poll completes with an answer', () => {
    const { machine, clock } = setup();
    clock.advance(5 * MINUTE);
    const result = machine.transition(running, {
      type: 'polled',
      poll: { taskId: 'task-1', status: 'completed', providerId: 'x', answer },
    });
    expect(result.state).toEqual(completed);
    expect(result.effects).toEqual([
      { type: 'save', state: completed },
      {
        type: 'notify',
        notice: { kind: 'completed', taskId: 'task-1', providerId: 'gemini-deep-research-max', hasAnswer: true },
      },
      { type: 'inject', answer },
    ]);
  });

  it('deletes the job and falls back to shallow research when the poll completes without an answer', () => {
    const { machine } = setup();
    const result = machine.transition(running, {
      type: 'polled',
      poll: { taskId: 'task-1', status: 'completed', providerId: 'x' },
    });
    expect(result).toEqual({
      state: IDLE_RESEARCH_STATE,
      effects: [
        { type: 'delete', taskId: 'task-1' },
        {
          type: 'notify',
          notice: { kind: 'completed', taskId: 'task-1', providerId: 'gemini-deep-research-max', hasAnswer: false },
        },
        { type: 'shallow', reason: 'deep-empty' },
      ],
    });
  });

  it('gives the job up and falls back to shallow research when the poll says failed or cancelled', () => {
    const { machine } = setup();
    for (const status of ['failed', 'cancelled'] as const) {
      expect(
        machine.transition(running, { type: 'polled', poll: { taskId: 'task-1', status, providerId: 'x' } }),
      ).toEqual({
        state: IDLE_RESEARCH_STATE,
        effects: [
          { type: 'delete', taskId: 'task-1' },
          {
            type: 'notify',
            notice: { kind: 'failed', taskId: 'task-1', providerId: 'gemini-deep-research-max', reason: status },
          },
          { type: 'shallow', reason: 'deep-failed' },
        ],
      });
    }
  });

  it('gives the job up as expired when it is still running at the configured age', () => {
    const { machine, clock } = setup({ maxJobAgeMs: 60 * MINUTE });
    clock.advance(59 * MINUTE);
    const young = machine.transition(running, {
      type: 'polled',
      poll: { taskId: 'task-1', status: 'running', providerId: 'x' },
    });
    expect(young.state.phase).toBe('running');
    clock.advance(MINUTE);
    const old = machine.transition(running, {
      type: 'polled',
      poll: { taskId: 'task-1', status: 'running', providerId: 'x' },
    });
    expect(old.state).toEqual(IDLE_RESEARCH_STATE);
    expect(old.effects).toContainEqual({
      type: 'notify',
      notice: { kind: 'failed', taskId: 'task-1', providerId: 'gemini-deep-research-max', reason: 'expired' },
    });
    expect(old.effects.at(-1)).toEqual({ type: 'shallow', reason: 'deep-failed' });
  });

  it('counts non-2xx polls, keeps skipping, and gives up at the configured count', () => {
    const { machine, clock } = setup({ maxFailedPolls: 3 });
    let state: ResearchState = running;
    for (const expectedCount of [1, 2]) {
      clock.advance(MINUTE);
      const result = machine.transition(state, { type: 'poll-failed', failure: http(400) });
      expect(result.state).toMatchObject({ phase: 'running', failedPolls: expectedCount, lastPolledAt: clock.now() });
      expect(result.effects.at(-1)).toEqual({ type: 'skip' });
      expect(result.effects[1]).toEqual({
        type: 'notify',
        notice: {
          kind: 'pending-skip',
          taskId: 'task-1',
          providerId: 'gemini-deep-research-max',
          remoteStatus: 'queued',
          failedPolls: expectedCount,
          failure: http(400),
        },
      });
      state = result.state;
    }
    const last = machine.transition(state, { type: 'poll-failed', failure: http(502) });
    expect(last.state).toEqual(IDLE_RESEARCH_STATE);
    expect(last.effects).toEqual([
      { type: 'delete', taskId: 'task-1' },
      {
        type: 'notify',
        notice: {
          kind: 'failed',
          taskId: 'task-1',
          providerId: 'gemini-deep-research-max',
          reason: 'poll-errors',
          failure: http(502),
        },
      },
      { type: 'shallow', reason: 'deep-failed' },
    ]);
  });

  it('counts malformed poll bodies like non-2xx answers', () => {
    const { machine } = setup({ maxFailedPolls: 1 });
    const result = machine.transition(running, {
      type: 'poll-failed',
      failure: { code: 'RESEARCH_MALFORMED_RESPONSE', kind: 'malformed' },
    });
    expect(result.state).toEqual(IDLE_RESEARCH_STATE);
    expect(result.effects[1]).toMatchObject({ notice: { kind: 'failed', reason: 'poll-errors' } });
  });

  it('gives the job up at once when the poll answers 404 or 410', () => {
    const { machine } = setup();
    for (const status of [404, 410]) {
      const result = machine.transition(running, { type: 'poll-failed', failure: http(status) });
      expect(result.state).toEqual(IDLE_RESEARCH_STATE);
      expect(result.effects[1]).toMatchObject({ notice: { kind: 'failed', reason: 'not-found' } });
    }
  });

  it('does not count timeouts but gives up once the job is too old to wait for', () => {
    const { machine, clock } = setup({ maxFailedPolls: 1, maxJobAgeMs: 60 * MINUTE });
    clock.advance(30 * MINUTE);
    const young = machine.transition(running, { type: 'poll-failed', failure: timeout });
    expect(young.state).toMatchObject({ phase: 'running', failedPolls: 0, lastPolledAt: T0 + 30 * MINUTE });
    expect(young.effects.at(-1)).toEqual({ type: 'skip' });
    clock.advance(30 * MINUTE);
    const old = machine.transition(young.state, { type: 'poll-failed', failure: timeout });
    expect(old.state).toEqual(IDLE_RESEARCH_STATE);
    expect(old.effects[1]).toMatchObject({ notice: { kind: 'failed', reason: 'expired', failure: timeout } });
  });

  it('injects the kept answer again on every tick until a plan is written', () => {
    const { machine } = setup();
    for (let tick = 0; tick < 3; tick++) {
      expect(machine.transition(completed, { type: 'tick', deepRequested: tick % 2 === 0 })).toEqual({
        state: completed,
        effects: [{ type: 'inject', answer }],
      });
    }
  });

  it('deletes the job and reports it consumed when a plan is written', () => {
    const { machine } = setup();
    expect(machine.transition(completed, { type: 'plan-written' })).toEqual({
      state: IDLE_RESEARCH_STATE,
      effects: [
        { type: 'delete', taskId: 'task-1' },
        { type: 'notify', notice: { kind: 'consumed', taskId: 'task-1', providerId: 'gemini-deep-research-max' } },
      ],
    });
  });

  it('ignores events that do not apply to the current state', () => {
    const { machine } = setup();
    const submission = { taskId: 't', status: 'queued' as const, providerId: 'p' };
    const cases: [ResearchState, Parameters<typeof machine.transition>[1]][] = [
      [IDLE_RESEARCH_STATE, { type: 'plan-written' }],
      [running, { type: 'plan-written' }],
      [running, { type: 'submitted', submission }],
      [completed, { type: 'submitted', submission }],
      [running, { type: 'submit-failed', failure: http(500) }],
      [IDLE_RESEARCH_STATE, { type: 'polled', poll: { taskId: 't', status: 'completed', providerId: 'p', answer } }],
      [completed, { type: 'polled', poll: { taskId: 'task-1', status: 'failed', providerId: 'p' } }],
      [running, { type: 'polled', poll: { taskId: 'other-task', status: 'failed', providerId: 'p' } }],
      [IDLE_RESEARCH_STATE, { type: 'poll-failed', failure: http(404) }],
      [completed, { type: 'poll-failed', failure: http(404) }],
    ];
    for (const [state, event] of cases) {
      expect(machine.transition(state, event)).toEqual({ state, effects: [] });
    }
  });

  it('rejects options that would never give a job up', () => {
    const clock = createManualClock(T0);
    expect(() => createResearchMachine({ clock }, { maxJobAgeMs: 0 })).toThrow(
      expect.objectContaining({ code: 'RESEARCH_INVALID_OPTIONS' }),
    );
    expect(() => createResearchMachine({ clock }, { maxFailedPolls: 0.5 })).toThrow(
      expect.objectContaining({ code: 'RESEARCH_INVALID_OPTIONS' }),
    );
  });
});

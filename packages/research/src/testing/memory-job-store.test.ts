import { describe, expect, it } from 'vitest';
import type { RunningResearchState } from '../research-machine.js';
import { createMemoryResearchJobStore } from './memory-job-store.js';

const running: RunningResearchState = {
  phase: 'running',
  taskId: 'task-1',
  providerId: 'p',
  submittedAt: 0,
  lastPolledAt: null,
  remoteStatus: 'queued',
  failedPolls: 0,
};

describe('createMemoryResearchJobStore', () => {
  it('round-trips copies of states and deletes only the matching task when a task id is given', async () => {
    const store = createMemoryResearchJobStore();
    expect(await store.load('u-1', 'm-1')).toEqual({ phase: 'idle' });
    await store.save('u-1', 'm-1', running);
    const loaded = await store.load('u-1', 'm-1');
    expect(loaded).toEqual(running);
    expect(loaded).not.toBe(running);
    expect(await store.delete('u-1', 'm-1', 'other')).toBe(false);
    expect(await store.delete('u-1', 'm-1', 'task-1')).toBe(true);
    expect(store.jobs.size).toBe(0);
  });

  it('lists the keys of the missions with a job and says when there are more', async () => {
    const store = createMemoryResearchJobStore();
    await store.save('u-1', 'm-1', running);
    await store.save('u-2', 'm-2', running);
    expect(await store.jobKeys(5)).toEqual({
      keys: [
        { userId: 'u-1', missionId: 'm-1' },
        { userId: 'u-2', missionId: 'm-2' },
      ],
      more: false,
    });
    expect(await store.jobKeys(1)).toEqual({ keys: [{ userId: 'u-1', missionId: 'm-1' }], more: true });
  });
});

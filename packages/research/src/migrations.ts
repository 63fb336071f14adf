import type { Migration } from '@mana-ai/core';
import researchJobs from '../sql/0001_research_jobs.sql';

/** The research package's migrations: the cross-tick deep-research job table. */
export const migrations: readonly Migration[] = [{ id: 'research/0001_research_jobs', sql: researchJobs }];

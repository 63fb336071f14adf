import type { Migration } from '@mana-ai/core';
import researchJobs from '../sql/0001_research_jobs.sql';
import researchJobState from '../sql/0002_research_job_state.sql';

/** The research package's migrations: the cross-tick deep-research job table and its state columns. */
export const migrations: readonly Migration[] = [
  { id: 'research/0001_research_jobs', sql: researchJobs },
  { id: 'research/0002_research_job_state', sql: researchJobState },
];

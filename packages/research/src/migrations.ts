import type { Migration } from '@mana-ai/core';
import researchJobs from '../sql/0001_research_jobs.sql';
import researchJobState from '../sql/0002_research_job_state.sql';
import researchJobsUserScope from '../sql/0003_research_jobs_user_scope.sql';

/** The research package's migrations: the cross-tick deep-research job table, its state columns, and its row-level security per user. */
export const migrations: readonly Migration[] = [
  { id: 'research/0001_research_jobs', sql: researchJobs },
  { id: 'research/0002_research_job_state', sql: researchJobState },
  { id: 'research/0003_research_jobs_user_scope', sql: researchJobsUserScope },
];

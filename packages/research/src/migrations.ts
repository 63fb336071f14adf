import type { Migration } from '@mana-ai/core';
import researchJobs from '../sql/0001_research_jobs.sql';
import researchJobState from '../sql/0002_research_job_state.sql';
import researchJobsUserScope from '../sql/0003_research_jobs_user_scope.sql';
import researchJobRead from '../sql/0004_research_job_read.sql';

/** The research package's migrations: the cross-tick deep-research job table, its state columns, its row-level security per user, and its one-statement read. */
export const migrations: readonly Migration[] = [
  { id: 'research/0001_research_jobs', sql: researchJobs },
  { id: 'research/0002_research_job_state', sql: researchJobState },
  { id: 'research/0003_research_jobs_user_scope', sql: researchJobsUserScope },
  { id: 'research/0004_research_job_read', sql: researchJobRead },
];

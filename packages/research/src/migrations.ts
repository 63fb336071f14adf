import type { Migration } from '@mana-ai/core';
import researchJobs from '../sql/0001_research_jobs.sql';
import researchJobState from '../sql/0002_research_job_state.sql';
import researchJobsUserScope from '../sql/0003_research_jobs_user_scope.sql';
import researchJobRead from '../sql/0004_research_job_read.sql';
import researchJobKeys from '../sql/0005_research_job_keys.sql';

/**
 * The research package's migrations: the cross-tick deep-research job table, its state columns, its
 * row-level security per user, its one-statement read, and the cross-user key set of missions with a
 * job (keys only).
 * `previousChecksums`: files whose comments changed after release (citations of the original
 * service's document became docs/wire-contract.md links); a database that applied the released text
 * stays current.
 */
export const migrations: readonly Migration[] = [
  { id: 'research/0001_research_jobs', sql: researchJobs, previousChecksums: [{ previous: 'cdfbc0096342da505b6b4b383e4391d5c19b1ed33d94a647e9f36d3949b2f9ab', current: 'a4a5e5326f90421c455d9be30f3e2ae880ddda8db1d2ed1b9d75a88d94e1ecb8' }] },
  { id: 'research/0002_research_job_state', sql: researchJobState, previousChecksums: [{ previous: 'f7019a92ec4a1fd72654546ad91c0c0c8f6f7ea0b936c1ada313ba45282cad90', current: '67ad54afa75282098397a5b7c3d5c2a55faf7f4487748eedf00b49a59a005b9d' }] },
  { id: 'research/0003_research_jobs_user_scope', sql: researchJobsUserScope },
  { id: 'research/0004_research_job_read', sql: researchJobRead },
  { id: 'research/0005_research_job_keys', sql: researchJobKeys },
];

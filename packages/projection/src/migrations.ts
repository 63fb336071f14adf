import type { Migration } from '@mana-ai/core';
import syncChanges from '../sql/0001_sync_changes.sql';
import manaAiSchema from '../sql/0002_mana_ai_schema.sql';
import projectionFeed from '../sql/0003_projection_feed.sql';
import feedHorizonLag from '../sql/0004_feed_horizon_lag.sql';
import dispatcher from '../sql/0005_dispatcher.sql';
import userScope from '../sql/0006_user_scope.sql';
import tokenUsageRetention from '../sql/0007_token_usage_retention.sql';
import writeBackFunctions from '../sql/0008_write_back_functions.sql';
import refreshBatch from '../sql/0009_refresh_batch.sql';
import claimRecords from '../sql/0010_claim_records.sql';
import claimVersions from '../sql/0011_claim_versions.sql';
import renewVersions from '../sql/0012_renew_versions.sql';

/**
 * The projection's migrations, in order: the dev-only `sync_changes` log, the `mana_ai` schema, then
 * leases, tombstones, the feed cursor, the least-privilege roles and the change feed function, the
 * feed's lag for operators, the dispatcher's typed claim columns, claim lanes and wake-up signals,
 * row-level security per user on the snapshot and token tables with the cross-user work in definer
 * functions, the token ledger's retention, the write-back's two statements, the refresh's batch
 * (the feed with the stored snapshots of its records, moving a snapshot past the runner's rows it
 * already holds), the claim with its records in one statement, and the claim's snapshot versions and
 * read time for the write-back's fast path (whose stamp may never be ahead of the database's now),
 * and the lease renewal's versions before and after (so a heartbeat keeps that fast path).
 * `previousChecksums`: files whose comments changed after release (citations of the original
 * service's document became docs/wire-contract.md links); a database that applied the released text
 * stays current.
 */
export const migrations: readonly Migration[] = [
  { id: 'projection/0001_sync_changes', sql: syncChanges, previousChecksums: [{ previous: '49a8614e3274ae937f7450be44d783aa898b100f4cace233b13c65802068154c', current: '2fba28f5aa0b59a30fd93a2bbb0ececf022576a41e7cd9b17f4b1af974fd1a0c' }] },
  { id: 'projection/0002_mana_ai_schema', sql: manaAiSchema, previousChecksums: [{ previous: '284e1867a9446bc0d7ac758d5f6b1f2c24ca4ff9518aca136ab4413a55f5ed9f', current: '5bf905ca4374fa16d9648e0fd63c2879b9925193fbcd0e7d9011f7417417279f' }] },
  { id: 'projection/0003_projection_feed', sql: projectionFeed },
  { id: 'projection/0004_feed_horizon_lag', sql: feedHorizonLag },
  { id: 'projection/0005_dispatcher', sql: dispatcher },
  { id: 'projection/0006_user_scope', sql: userScope },
  { id: 'projection/0007_token_usage_retention', sql: tokenUsageRetention },
  { id: 'projection/0008_write_back_functions', sql: writeBackFunctions },
  { id: 'projection/0009_refresh_batch', sql: refreshBatch },
  { id: 'projection/0010_claim_records', sql: claimRecords },
  { id: 'projection/0011_claim_versions', sql: claimVersions },
  { id: 'projection/0012_renew_versions', sql: renewVersions },
];

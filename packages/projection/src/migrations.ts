import type { Migration } from '@mana-ai/core';
import syncChanges from '../sql/0001_sync_changes.sql';
import manaAiSchema from '../sql/0002_mana_ai_schema.sql';
import projectionFeed from '../sql/0003_projection_feed.sql';
import feedHorizonLag from '../sql/0004_feed_horizon_lag.sql';
import dispatcher from '../sql/0005_dispatcher.sql';
import userScope from '../sql/0006_user_scope.sql';
import tokenUsageRetention from '../sql/0007_token_usage_retention.sql';
import writeBackFunctions from '../sql/0008_write_back_functions.sql';
import refreshFeed from '../sql/0009_refresh_feed.sql';
import claimRecords from '../sql/0010_claim_records.sql';
import refreshBatch from '../sql/0011_refresh_batch.sql';

/**
 * The projection's migrations, in order: the dev-only `sync_changes` log, the `mana_ai` schema, then
 * leases, tombstones, the feed cursor, the least-privilege roles and the change feed function, the
 * feed's lag for operators, the dispatcher's typed claim columns, claim lanes and wake-up signals,
 * row-level security per user on the snapshot and token tables with the cross-user work in definer
 * functions, the token ledger's retention, the write-back's two statements, the refresh's feed
 * with the stored snapshots of its records, the claim with its records in one statement, and the
 * refresh batch that moves a snapshot past the runner's rows it already holds.
 */
export const migrations: readonly Migration[] = [
  { id: 'projection/0001_sync_changes', sql: syncChanges },
  { id: 'projection/0002_mana_ai_schema', sql: manaAiSchema },
  { id: 'projection/0003_projection_feed', sql: projectionFeed },
  { id: 'projection/0004_feed_horizon_lag', sql: feedHorizonLag },
  { id: 'projection/0005_dispatcher', sql: dispatcher },
  { id: 'projection/0006_user_scope', sql: userScope },
  { id: 'projection/0007_token_usage_retention', sql: tokenUsageRetention },
  { id: 'projection/0008_write_back_functions', sql: writeBackFunctions },
  { id: 'projection/0009_refresh_feed', sql: refreshFeed },
  { id: 'projection/0010_claim_records', sql: claimRecords },
  { id: 'projection/0011_refresh_batch', sql: refreshBatch },
];

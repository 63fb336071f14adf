import { type EventChannel, type Logger, type MissionInputRef, type ResolvedInput, noopLogger } from '@mana-ai/core';
import type { Sql } from 'postgres';
import { type DecryptAudit, createDecryptAudit } from './audit.js';
import { createEncryptedResolver } from './encrypted.js';
import { errorLabel } from './errors.js';
import type { ResolverEvents } from './events.js';
import { ENCRYPTED_INPUTS } from './format.js';
import { createGoalsResolver } from './goals.js';
import type { ReplayRecord, ResolverContext, ResolverCrypto } from './ports.js';
import { type ResolverRegistry, createResolverRegistry } from './registry.js';

/** Collaborators of {@link createInputResolvers}. */
export interface InputResolversDeps {
  /** The runner's client; audit rows are written under RLS through it. */
  sql: Sql;
  /** Single-record replay (from `@mana-ai/projection`). */
  replayRecord: ReplayRecord;
  /** Grant unwrap and value decryption (from `@mana-ai/crypto`). */
  crypto: ResolverCrypto;
  logger?: Logger;
  events?: EventChannel<ResolverEvents>;
}

/** Options of {@link createInputResolvers}. */
export interface InputResolversOptions {
  /** Sync app id of the plaintext goals (default `goals`). */
  goalsAppId?: string;
}

/** One mission's inputs to resolve. */
export interface MissionInputs {
  userId: string;
  missionId: string;
  /** The iteration being planned (stored in audit rows). */
  iterationId?: string | undefined;
  /** The mission's grant as stored on the record (absent or `null` = none). */
  grant?: unknown;
  inputs: readonly MissionInputRef[];
}

/** The runner-facing resolver set: registry with the built-ins, context building, audit. */
export interface InputResolvers {
  /** The registry (built-ins registered; add or replace modules here). */
  readonly registry: ResolverRegistry;
  /** The decrypt audit (write and read). */
  readonly audit: DecryptAudit;
  /**
   * Builds the context of one mission: unwraps the grant bound to the mission; a failed unwrap
   * emits `grant.skipped` and leaves the context without a grant, its reason in `grantSkipReason`.
   * Never rejects.
   */
  buildContext(mission: Omit<MissionInputs, 'inputs'>): Promise<ResolverContext>;
  /** Builds the context and resolves every input (in parallel, results in input order). */
  resolve(mission: MissionInputs): Promise<ResolvedInput[]>;
}

/**
 * Creates the input resolvers with the built-ins: `goals` (plaintext), `notes`, `tasks`/`todo`,
 * `calendar`, `journal`, `kontext`, `profile` (encrypted, allowlisted, audited).
 */
export function createInputResolvers(deps: InputResolversDeps, options: InputResolversOptions = {}): InputResolvers {
  const logger = deps.logger ?? noopLogger;
  const audit = createDecryptAudit({ sql: deps.sql, logger, ...(deps.events ? { events: deps.events } : {}) });
  const registry = createResolverRegistry({ logger, ...(deps.events ? { events: deps.events } : {}) });
  registry.register(
    'goals',
    createGoalsResolver({ replayRecord: deps.replayRecord }, options.goalsAppId ? { appId: options.goalsAppId } : {}),
  );
  const encryptedDeps = { replayRecord: deps.replayRecord, crypto: deps.crypto, audit, ...(deps.events ? { events: deps.events } : {}) };
  for (const [module, definition] of Object.entries(ENCRYPTED_INPUTS)) {
    registry.register(module, createEncryptedResolver(encryptedDeps, definition));
  }

  const buildContext: InputResolvers['buildContext'] = async ({ userId, missionId, iterationId, grant }) => {
    const context: ResolverContext = { userId, missionId, iterationId };
    if (grant === undefined || grant === null) return context;
    let reason: string;
    try {
      const outcome = await deps.crypto.unwrapGrant(grant, { missionId });
      if (outcome.ok) return { ...context, grant: { key: outcome.key, derivation: outcome.derivation } };
      reason = outcome.reason;
    } catch (error) {
      reason = 'unwrap-error';
      logger.error({ missionId, error: errorLabel(error) }, 'grant unwrap threw');
    }
    logger.warn({ missionId, reason }, 'grant unwrap skipped');
    deps.events?.emit('grant.skipped', { missionId, reason });
    return { ...context, grantSkipReason: reason };
  };

  return {
    registry,
    audit,
    buildContext,
    async resolve(mission) {
      return registry.resolve(mission.inputs, await buildContext(mission));
    },
  };
}

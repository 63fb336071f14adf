import { type EventChannel, type Logger, type MissionInputRef, type ResolvedInput, type SqlClient, noopLogger } from '@mana-ai/core';
import { type DecryptAudit, createDecryptAudit } from './audit.js';
import { createEncryptedResolver } from './encrypted.js';
import { ResolversError, errorLabel } from './errors.js';
import type { InputsDroppedReason, ResolverEvents } from './events.js';
import { ENCRYPTED_INPUTS } from './format.js';
import { createGoalsResolver } from './goals.js';
import type { ReplayRecord, ResolverContext, ResolverCrypto } from './ports.js';
import { type ResolverRegistry, createResolverRegistry } from './registry.js';

/** Collaborators of {@link createInputResolvers}. */
export interface InputResolversDeps {
  /** The runner's client; audit rows are written under RLS through it. */
  sql: SqlClient;
  /** Single-record replay (from `@mana-ai/projection`). */
  replayRecord: ReplayRecord;
  /** Grant unwrap and value decryption (from `@mana-ai/crypto`). */
  crypto: ResolverCrypto;
  logger?: Logger;
  events?: EventChannel<ResolverEvents>;
}

/** Inputs of one mission resolved at most, by default (DESIGN §6). */
export const DEFAULT_MAX_INPUTS_PER_MISSION = 200;

/** Options of {@link createInputResolvers}. */
export interface InputResolversOptions {
  /** Sync app id of the plaintext goals (default `goals`). */
  goalsAppId?: string;
  /**
   * Inputs of one mission resolved at most (default {@link DEFAULT_MAX_INPUTS_PER_MISSION}): the
   * first ones in the mission's order; the rest are neither read, decrypted nor audited.
   */
  maxInputsPerMission?: number;
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
  /** Aborts the resolution (the run's wall-time bound): no further input is started. */
  signal?: AbortSignal | undefined;
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
  /**
   * Builds the context and resolves the mission's first `maxInputsPerMission` inputs (a few at a
   * time, results in input order). Inputs beyond the bound are dropped with a warning and
   * `inputs.dropped`; an aborted `signal` rejects with its reason.
   */
  resolve(mission: MissionInputs): Promise<ResolvedInput[]>;
}

const MAX_INPUTS_REASON: InputsDroppedReason = 'max-inputs-per-mission';

/**
 * Creates the input resolvers with the built-ins: `goals` (plaintext), `notes`, `tasks`/`todo`,
 * `calendar`, `journal`, `kontext`, `profile` (encrypted, allowlisted, audited). Throws
 * `RESOLVERS_INVALID_ARGUMENT` when `maxInputsPerMission` is not a positive integer.
 */
export function createInputResolvers(deps: InputResolversDeps, options: InputResolversOptions = {}): InputResolvers {
  const logger = deps.logger ?? noopLogger;
  const maxInputs = options.maxInputsPerMission ?? DEFAULT_MAX_INPUTS_PER_MISSION;
  if (!Number.isSafeInteger(maxInputs) || maxInputs < 1) {
    throw new ResolversError('RESOLVERS_INVALID_ARGUMENT', 'maxInputsPerMission must be a positive integer');
  }
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
      const listed = mission.inputs.length;
      if (listed > maxInputs) {
        const dropped = listed - maxInputs;
        logger.warn({ missionId: mission.missionId, listed, dropped, reason: MAX_INPUTS_REASON }, 'mission inputs beyond the bound not resolved');
        deps.events?.emit('inputs.dropped', { missionId: mission.missionId, listed, dropped, reason: MAX_INPUTS_REASON });
      }
      mission.signal?.throwIfAborted();
      const refs = listed > maxInputs ? mission.inputs.slice(0, maxInputs) : mission.inputs;
      return registry.resolve(refs, await buildContext(mission), mission.signal);
    },
  };
}

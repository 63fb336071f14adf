/** A user acting through one of their devices. */
export interface UserActor {
  readonly kind: 'user';
  readonly principalId: string;
  readonly displayName: string;
}

/** An AI agent acting for a user within one mission iteration. */
export interface AiActor {
  readonly kind: 'ai';
  readonly principalId: string;
  readonly displayName: string;
  readonly missionId: string;
  readonly iterationId: string;
  readonly rationale: string;
}

/** An automated part of the system. */
export interface SystemActor {
  readonly kind: 'system';
  readonly principalId: string;
  readonly displayName: string | undefined;
}

/** Who caused a change: written into the `actor` column of `sync_changes`. */
export type Actor = UserActor | AiActor | SystemActor;

/** Field-origin values that accompany an actor on the clients. */
export type FieldOrigin = 'user' | 'agent' | 'system' | 'migration' | 'server-replay';

export const SYSTEM_PROJECTION = 'system:projection';
export const SYSTEM_RULE = 'system:rule';
export const SYSTEM_MIGRATION = 'system:migration';
export const SYSTEM_STREAM = 'system:stream';
export const SYSTEM_MISSION_RUNNER = 'system:mission-runner';
export const SYSTEM_BOOTSTRAP = 'system:bootstrap';
export const LEGACY_USER_PRINCIPAL = 'legacy:user';
export const LEGACY_AI_PRINCIPAL = 'legacy:ai-default';
export const LEGACY_SYSTEM_PRINCIPAL = 'legacy:system';
export const LEGACY_DISPLAY_NAME = 'Unbekannt';

const SYSTEM_DISPLAY_NAMES: Readonly<Record<string, string>> = {
  [SYSTEM_PROJECTION]: 'Projektion',
  [SYSTEM_RULE]: 'Regel',
  [SYSTEM_MIGRATION]: 'Migration',
  [SYSTEM_STREAM]: 'Event-Stream',
  [SYSTEM_MISSION_RUNNER]: 'Mission-Runner',
  [SYSTEM_BOOTSTRAP]: 'Bootstrap',
};

/** Creates a frozen user actor (`displayName` defaults to `Du`). */
export function makeUserActor(userId: string, displayName = 'Du'): UserActor {
  return Object.freeze({ kind: 'user', principalId: userId, displayName });
}

/** The generic legacy user actor. */
export const USER_ACTOR: UserActor = makeUserActor(LEGACY_USER_PRINCIPAL, 'Du');

/** Parameters of {@link makeAgentActor}. */
export interface AgentActorInput {
  agentId: string;
  displayName: string;
  missionId: string;
  iterationId: string;
  rationale: string;
}

/** Creates a frozen AI actor with keys in wire order. */
export function makeAgentActor(input: AgentActorInput): AiActor {
  return Object.freeze({
    kind: 'ai',
    principalId: input.agentId,
    displayName: input.displayName,
    missionId: input.missionId,
    iterationId: input.iterationId,
    rationale: input.rationale,
  });
}

/** Creates a frozen system actor; the display name defaults to the source's known name. */
export function makeSystemActor(source: string, displayName?: string): SystemActor {
  return Object.freeze({
    kind: 'system',
    principalId: source,
    displayName: displayName ?? SYSTEM_DISPLAY_NAMES[source],
  });
}

/** Maps any stored actor shape, including the pre-identity legacy shapes, to a current {@link Actor}. */
export function normalizeActor(raw: unknown): Actor {
  if (typeof raw !== 'object' || raw === null) return makeUserActor(LEGACY_USER_PRINCIPAL, LEGACY_DISPLAY_NAME);
  const value = raw as Record<string, unknown>;
  const principalId = typeof value.principalId === 'string' ? value.principalId : undefined;
  const displayName = typeof value.displayName === 'string' ? value.displayName : undefined;
  const complete = principalId !== undefined && displayName !== undefined;
  switch (value.kind) {
    case 'user':
      return complete ? (value as unknown as UserActor) : makeUserActor(principalId ?? LEGACY_USER_PRINCIPAL, displayName ?? 'Du');
    case 'ai':
      if (complete) return value as unknown as AiActor;
      return makeAgentActor({
        agentId: principalId ?? LEGACY_AI_PRINCIPAL,
        displayName: displayName ?? LEGACY_DISPLAY_NAME,
        missionId: typeof value.missionId === 'string' ? value.missionId : '',
        iterationId: typeof value.iterationId === 'string' ? value.iterationId : '',
        rationale: typeof value.rationale === 'string' ? value.rationale : '',
      });
    case 'system': {
      if (complete) return value as unknown as SystemActor;
      const source = typeof value.source === 'string' && value.source !== '' ? value.source : undefined;
      return makeSystemActor(source ? `system:${source}` : LEGACY_SYSTEM_PRINCIPAL);
    }
    default:
      return makeUserActor(LEGACY_USER_PRINCIPAL, LEGACY_DISPLAY_NAME);
  }
}

/** True for a user actor. */
export function isUserActor(actor: Actor | undefined): actor is UserActor {
  return actor?.kind === 'user';
}

/** True for an AI actor. */
export function isAiActor(actor: Actor | undefined): actor is AiActor {
  return actor?.kind === 'ai';
}

/** True for a system actor. */
export function isSystemActor(actor: Actor | undefined): actor is SystemActor {
  return actor?.kind === 'system';
}

/** True for the mission runner's system actor. */
export function isFromMissionRunner(actor: Actor | undefined): boolean {
  return actor?.kind === 'system' && actor.principalId === SYSTEM_MISSION_RUNNER;
}

/** The field origin that a change by `actor` carries. */
export function originFromActor(actor: Actor): Exclude<FieldOrigin, 'server-replay'> {
  if (actor.kind === 'ai') return 'agent';
  if (actor.kind === 'system') return actor.principalId === SYSTEM_MIGRATION ? 'migration' : 'system';
  return 'user';
}

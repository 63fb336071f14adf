import { randomUUID } from 'node:crypto';
import {
  type AiPolicy,
  type Clock,
  type GrantDerivation,
  type MissionCadence,
  type MissionGrant,
  type MissionInputRef,
  type WebCryptoKey,
  makeUserActor,
  originFromActor,
  systemClock,
} from '@mana-ai/core';
import { GRANT_DERIVATION_VERSION, createGrantIssuer, deriveMissionDataKey, encryptValue } from '@mana-ai/crypto';
import type { Sql } from 'postgres';

// Writes `sync_changes` rows exactly as mana-sync stores what the webapp pushes (docs/wire-contract.md#the-sync-log):
// inserts carry the whole record and an empty field_meta, updates one `at` per changed field, every
// row the user actor, origin `user`, the tab's client id and the record's space. For demos and
// whole-system tests only: the runner itself never writes these rows.

/** Fields the webapp's Dexie hook strips from updates (immutable after create). */
const IMMUTABLE_FIELDS = new Set(['userId', 'spaceId', 'authorId']);

/** Options of {@link createWebappClient}. */
export interface WebappClientOptions {
  /** The signed-in user (the JWT `sub`). */
  userId: string;
  /** The browser tab's client id (default: a fresh UUID, as each tab has its own). */
  clientId?: string;
  /** The active space, stamped on every record and row (default: `space-<userId>`). */
  spaceId?: string;
  /** The user's display name in the actor (default `Du`, as the webapp). */
  displayName?: string;
  /** Source of `createdAt` and the `at` of updated fields (default: the system clock). */
  clock?: Clock;
}

/** One signed-in webapp tab pushing changes through mana-sync. */
export interface WebappClient {
  readonly userId: string;
  readonly clientId: string;
  readonly spaceId: string;
  /** Creates a record (`op: 'insert'`): `data` = the record with `id`, `createdAt`, `userId`, `spaceId`. Returns the row id. */
  insert(appId: string, table: string, record: Record<string, unknown> & { id: string }): Promise<string>;
  /** Modifies fields (`op: 'update'`): one `field_meta` entry per field, stamped now; `undefined` travels as `null`. Returns the row id. */
  update(appId: string, table: string, recordId: string, fields: Record<string, unknown>): Promise<string>;
  /** Soft-deletes a record (`op: 'delete'`, `data = {deletedAt}`). Returns the row id. */
  softDelete(appId: string, table: string, recordId: string): Promise<string>;
}

/** Creates a {@link WebappClient} writing through `sql` (any role allowed to insert into `sync_changes`). */
export function createWebappClient(sql: Sql, options: WebappClientOptions): WebappClient {
  const { userId } = options;
  if (!userId) throw new Error('a webapp client needs a user id');
  const clientId = options.clientId ?? randomUUID();
  const spaceId = options.spaceId ?? `space-${userId}`;
  const clock = options.clock ?? systemClock;
  const actor = makeUserActor(userId, options.displayName ?? 'Du');
  const origin = originFromActor(actor);
  const nowIso = () => new Date(clock.now()).toISOString();

  // Each change is its own RLS-scoped transaction, as mana-sync commits them one by one.
  const write = async (appId: string, table: string, recordId: string, op: string, data: unknown, fieldMeta: unknown): Promise<string> =>
    sql.begin(async (tx) => {
      await tx`SELECT set_config('app.current_user_id', ${userId}, true)`;
      const [row] = await tx<{ id: string }[]>`
        INSERT INTO sync_changes
          (app_id, table_name, record_id, user_id, space_id, op, data, field_meta, client_id, schema_version, actor, origin)
        VALUES
          (${appId}, ${table}, ${recordId}, ${userId}, ${spaceId}, ${op}, ${JSON.stringify(data)}::text::jsonb,
           ${JSON.stringify(fieldMeta)}::text::jsonb, ${clientId}, 1, ${JSON.stringify(actor)}::text::jsonb, ${origin})
        RETURNING id::text AS id`;
      return row!.id;
    });

  return {
    userId,
    clientId,
    spaceId,
    insert(appId, table, record) {
      const data = { createdAt: nowIso(), ...record, userId, spaceId };
      return write(appId, table, record.id, 'insert', data, {});
    },
    update(appId, table, recordId, fields) {
      const at = nowIso();
      const data: Record<string, unknown> = {};
      const fieldMeta: Record<string, string> = {};
      for (const [field, value] of Object.entries(fields)) {
        if (IMMUTABLE_FIELDS.has(field)) continue;
        data[field] = value === undefined ? null : value;
        fieldMeta[field] = at;
      }
      return write(appId, table, recordId, 'update', data, fieldMeta);
    },
    softDelete(appId, table, recordId) {
      return write(appId, table, recordId, 'delete', { deletedAt: nowIso() }, {});
    },
  };
}

/** An agent as the user creates it in the webapp (docs/wire-contract.md#missions-and-agents). */
export interface AgentSeed {
  /** Default: a fresh UUID. */
  id?: string;
  name: string;
  role?: string;
  avatar?: string;
  state?: 'active' | 'paused' | 'archived';
  /** Rolling 24 h budget; absent = unlimited. */
  maxTokensPerDay?: number;
  /** Default 1, as the webapp. */
  maxConcurrentMissions?: number;
  /** Default: every tool at its catalog default, `propose` for the rest. */
  policy?: AiPolicy;
}

/** Writes an agent (`ai`/`agents` insert) and returns its id. */
export async function writeAgent(client: WebappClient, agent: AgentSeed): Promise<string> {
  const id = agent.id ?? randomUUID();
  await client.insert('ai', 'agents', {
    id,
    name: agent.name,
    ...(agent.avatar === undefined ? {} : { avatar: agent.avatar }),
    role: agent.role ?? '',
    policy: agent.policy ?? { tools: {}, defaultForAi: 'propose' },
    ...(agent.maxTokensPerDay === undefined ? {} : { maxTokensPerDay: agent.maxTokensPerDay }),
    maxConcurrentMissions: agent.maxConcurrentMissions ?? 1,
    state: agent.state ?? 'active',
  });
  return id;
}

/** A mission as the user creates it in the webapp (docs/wire-contract.md#missions-and-agents, docs/wire-contract.md#the-sync-log). */
export interface MissionSeed {
  /** Default: a fresh UUID (the webapp's `crypto.randomUUID()`). */
  id?: string;
  title: string;
  conceptMarkdown?: string;
  objective: string;
  inputs?: MissionInputRef[];
  cadence: MissionCadence;
  /** The first due time the webapp stamped; absent for a cron cadence (the webapp computes none, the runner does). */
  nextRunAt?: string | undefined;
  /** IANA zone in which `daily`/`weekly`/`cron` cadences are read (absent: the runner's default). */
  timezone?: string;
  agentId?: string;
  state?: 'active' | 'paused' | 'done' | 'archived';
}

/** Writes a mission (`ai`/`aiMissions` insert, no iterations, no grant yet) and returns its id. */
export async function writeMission(client: WebappClient, mission: MissionSeed): Promise<string> {
  const id = mission.id ?? randomUUID();
  await client.insert('ai', 'aiMissions', {
    id,
    title: mission.title,
    conceptMarkdown: mission.conceptMarkdown ?? '',
    objective: mission.objective,
    inputs: mission.inputs ?? [],
    cadence: mission.cadence,
    state: mission.state ?? 'active',
    nextRunAt: mission.nextRunAt,
    iterations: [],
    ...(mission.agentId === undefined ? {} : { agentId: mission.agentId }),
    ...(mission.timezone === undefined ? {} : { timezone: mission.timezone }),
  });
  return id;
}

/** A note whose `title` and `content` are stored encrypted (docs/wire-contract.md#missions-and-agents). */
export interface EncryptedNoteSeed {
  /** Default: a fresh UUID. */
  id?: string;
  title: string;
  content: string;
  /** The AES-GCM key the fields are encrypted under (see {@link missionDataKey}). */
  key: WebCryptoKey;
}

/** Writes a note (`notes`/`notes` insert) with `enc:1:` title and content; returns its id. */
export async function writeEncryptedNote(client: WebappClient, note: EncryptedNoteSeed): Promise<string> {
  const id = note.id ?? randomUUID();
  await client.insert('notes', 'notes', {
    id,
    title: await encryptValue(note.key, note.title),
    content: await encryptValue(note.key, note.content),
    isPinned: false,
  });
  return id;
}

/** Writes the grant onto the mission (`aiMissions` update of `grant`), as the webapp does after mana-auth issued it. */
export async function writeGrant(client: WebappClient, missionId: string, grant: MissionGrant): Promise<string> {
  return client.update('ai', 'aiMissions', missionId, { grant });
}

/** What a grant for `inputs` covers: their tables and `"<table>:<id>"` record ids, sorted as mana-auth stores them. */
export function grantDerivationFor(missionId: string, inputs: readonly MissionInputRef[]): GrantDerivation {
  return {
    version: GRANT_DERIVATION_VERSION,
    missionId,
    tables: [...new Set(inputs.map((input) => input.table))].sort(),
    recordIds: inputs.map((input) => `${input.table}:${input.id}`).sort(),
  };
}

/**
 * The mission data key the runner will unwrap from the grant for `inputs`, as an encrypt key.
 * v1 grants only decrypt values encrypted under this key, not under the master key (crypto
 * README, B2, docs/wire-contract.md#the-originals-known-defects), so seeded inputs are encrypted with it.
 */
export async function missionDataKey(masterKey: Uint8Array, missionId: string, inputs: readonly MissionInputRef[]): Promise<WebCryptoKey> {
  return deriveMissionDataKey(masterKey, grantDerivationFor(missionId, inputs), ['encrypt']);
}

/** Options of {@link issueGrant}. */
export interface IssueGrantOptions {
  /** The runner's public key (SPKI PEM), as mana-auth is configured with it. */
  publicKeyPem: string;
  /** The user's 32-byte master key (a copy is used: the issuer zero-fills what it is given). */
  masterKey: Uint8Array;
  missionId: string;
  inputs: readonly MissionInputRef[];
  /** Default 7 days. */
  ttlMs?: number;
  clock?: Clock;
}

/** Issues a grant for `inputs` the way mana-auth's `POST /api/v1/me/ai-mission-grant` does (docs/wire-contract.md#crypto-formats). */
export async function issueGrant(options: IssueGrantOptions): Promise<MissionGrant> {
  const issuer = createGrantIssuer(options.clock ? { clock: options.clock } : {}, { publicKey: options.publicKeyPem });
  const { tables, recordIds } = grantDerivationFor(options.missionId, options.inputs);
  return issuer.issue(Uint8Array.from(options.masterKey), {
    missionId: options.missionId,
    tables,
    recordIds,
    ...(options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }),
  });
}

/** Options of {@link seedMissionWithNote}. */
export interface MissionWithNoteSeed {
  /** The runner's public key (SPKI PEM). */
  publicKeyPem: string;
  masterKey: Uint8Array;
  agent: AgentSeed;
  mission: Omit<MissionSeed, 'inputs' | 'agentId'>;
  note: { id?: string; title: string; content: string };
}

/** What {@link seedMissionWithNote} wrote. */
export interface SeededMission {
  agentId: string;
  missionId: string;
  noteId: string;
  grant: MissionGrant;
}

/**
 * The whole webapp flow for one mission: create the agent, the encrypted note, the mission linked
 * to the note, then request a grant for the note from the auth service and write it onto the mission.
 */
export async function seedMissionWithNote(client: WebappClient, seed: MissionWithNoteSeed): Promise<SeededMission> {
  const missionId = seed.mission.id ?? randomUUID();
  const noteId = seed.note.id ?? randomUUID();
  const inputs: MissionInputRef[] = [{ module: 'notes', table: 'notes', id: noteId }];
  const agentId = await writeAgent(client, seed.agent);
  const key = await missionDataKey(Uint8Array.from(seed.masterKey), missionId, inputs);
  await writeEncryptedNote(client, { id: noteId, title: seed.note.title, content: seed.note.content, key });
  await writeMission(client, { ...seed.mission, id: missionId, inputs, agentId });
  const grant = await issueGrant({ publicKeyPem: seed.publicKeyPem, masterKey: seed.masterKey, missionId, inputs });
  await writeGrant(client, missionId, grant);
  return { agentId, missionId, noteId, grant };
}

import { sha1 } from './sha1.js';

/** The namespace of iteration ids (a fixed random UUID; changing it changes every derived id). */
export const ITERATION_ID_NAMESPACE = '5b0f3a8e-6c1d-4f2a-9e7b-2d4c8a1f6e90';

function uuidBytes(uuid: string): Uint8Array {
  const hex = uuid.replace(/-/g, '');
  const bytes = new Uint8Array(16);
  for (let index = 0; index < 16; index++) bytes[index] = Number.parseInt(hex.slice(index * 2, index * 2 + 2), 16);
  return bytes;
}

function formatUuid(bytes: Uint8Array): string {
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/**
 * The iteration id of a mission's run for one due slot: a name-based UUID (RFC 9562 version 5,
 * SHA-1 over the namespace and `<missionId>\n<dueSlot>`), so a retried write for the same slot
 * carries the same id and is recognised. Computed synchronously; async for compatibility.
 */
export async function deriveIterationId(missionId: string, dueSlot: string): Promise<string> {
  const name = new TextEncoder().encode(`${missionId}\n${dueSlot}`);
  const input = new Uint8Array(16 + name.length);
  input.set(uuidBytes(ITERATION_ID_NAMESPACE), 0);
  input.set(name, 16);
  const bytes = sha1(input).slice(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x50;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  return formatUuid(bytes);
}

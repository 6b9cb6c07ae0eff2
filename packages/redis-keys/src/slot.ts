/**
 * Redis Cluster's hash slots: a key lives in slot CRC16(hash tag) mod 16384, and a script, transaction
 * or multi-key command may only touch keys of one slot. atoll runs on single servers (or Sentinel groups),
 * where any keys may go together, so nothing would notice a pair of keys in different slots until the day
 * it runs on a cluster; `assertOneSlot` makes every call site say so now, in every test.
 */
import { hashTag } from './define.ts';

export const HASH_SLOTS = 16384;

/** CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the checksum Redis Cluster hashes with. */
function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The cluster slot of a key, as `CLUSTER KEYSLOT` gives it. */
export function hashSlot(key: string): number {
  return crc16(new TextEncoder().encode(hashTag(key))) % HASH_SLOTS;
}

/** Thrown when keys used together would sit in different cluster slots. */
export class CrossSlotError extends Error {
  constructor(what: string, keys: readonly string[]) {
    const slots = keys.map((k) => `${k} (slot ${hashSlot(k)})`).join(', ');
    super(`${what} touches keys in different cluster slots: ${slots}; give them one hash tag`);
    this.name = 'CrossSlotError';
  }
}

/**
 * Throws unless every key hashes to one slot; `what` names the command or script in the message.
 * Returns the keys, so a call site can check them where it passes them.
 */
export function assertOneSlot<K extends readonly string[]>(what: string, keys: K): K {
  const first = keys[0];
  if (first === undefined) return keys;
  const slot = hashSlot(first);
  if (keys.some((k) => hashSlot(k) !== slot)) throw new CrossSlotError(what, keys);
  return keys;
}

import { createHash } from 'node:crypto';

/**
 * A UUID-shaped event id derived from `text` (the version 5 layout: a hash with the version and
 * variant bits set). Publishing the same step again with the same text gives the same id, and
 * consumers, which deduplicate by event id, act on it once.
 */
export function stableEventId(text: string, algorithm: 'sha1' | 'sha256' = 'sha1'): string {
  const h = createHash(algorithm).update(text).digest('hex');
  const variant = ((Number.parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The id of the result a gate worker publishes for a request: the same for a redelivered request. */
export function resultEventId(requestId: string, resultType: string): string {
  return stableEventId(`${resultType}\n${requestId}`);
}

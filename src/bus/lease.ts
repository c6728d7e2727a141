import type { HeldLease, LeaseHolder } from './types.js';

/**
 * How both idempotency stores write a lease: the marker `running` followed by the stream entry and
 * the consumer holding it, one per line, so a store can tell a lease held for the same entry (the
 * entry was reclaimed from its holder) from one held for a duplicate entry.
 *
 * @module
 */

/** The marker of a handled event id. */
export const DONE_MARKER = 'done';

/** The marker of a lease: `running`, and for a named holder its entry and consumer. */
export function leaseMarker(holder?: LeaseHolder): string {
  return holder ? `${entryPrefix(holder)}${holder.consumer}` : 'running';
}

/** What every lease on the holder's entry starts with, whoever holds it. */
export function entryPrefix(holder: LeaseHolder): string {
  return `running\n${holder.stream}\n${holder.entryId}\n`;
}

/** The holder of a stored marker; undefined for `done`, an anonymous lease or nothing stored. */
export function parseLeaseMarker(marker: string | null | undefined): HeldLease | undefined {
  if (!marker?.startsWith('running\n')) return undefined;
  const consumer = marker.slice(marker.lastIndexOf('\n') + 1);
  return consumer ? { consumer, marker } : undefined;
}

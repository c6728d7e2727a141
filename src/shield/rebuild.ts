import type { Kysely } from 'kysely';
import type { EventStreamReader } from '../bus/stream-reader.js';
import { describeCause } from '../errors/index.js';
import { decodeEntry } from '../events/codec.js';
import type { DeploymentEvent } from '../events/envelope.js';
import { type Logger, silentLogger } from '../runtime/logging.js';
import type { Database } from '../store/schema.js';
import type { EventOrigin } from './event-log.js';
import { ShieldStore } from './store/shield-store.js';

export interface RebuildShieldOptions {
  db: Kysely<Database>;
  /** Where the history comes from; see `streamReaderFor(bus)`. */
  reader: EventStreamReader;
  logger?: Logger;
  /** Entries read and logged per round trip. @defaultValue 500 */
  batchSize?: number;
}

/** What a rebuild did. */
export interface RebuildShieldResult {
  /** Streams read. */
  streams: number;
  /** Entries read from them. */
  entries: number;
  /** Events logged (an event present twice in the streams is logged once). */
  events: number;
  /** Entries that could not be decoded (skipped, as the live projection dead-letters them). */
  undecodable: number;
  /** Deployment records written. */
  deployments: number;
}

/**
 * Rebuilds Shield's projection from the event streams: empties the event log and the records,
 * reads every registered stream from its start (read-only: no consumer group is touched), logs
 * every event, then computes each deployment's record once. The records equal those the live
 * projection built from the same events, since a record is a function of its events alone.
 *
 * Only what the streams still hold comes back: entries trimmed from the streams are gone from the
 * rebuilt log too. A projection consumer may keep running meanwhile; both log idempotently.
 */
export async function rebuildShield(options: RebuildShieldOptions): Promise<RebuildShieldResult> {
  const logger = options.logger ?? silentLogger();
  const batchSize = options.batchSize ?? 500;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  }
  const store = new ShieldStore(options.db);
  await store.clear();
  const result: RebuildShieldResult = { streams: 0, entries: 0, events: 0, undecodable: 0, deployments: 0 };
  for (const type of await options.reader.types()) {
    result.streams++;
    let after: string | undefined;
    for (;;) {
      const entries = await options.reader.read(type, after, batchSize);
      if (entries.length === 0) break;
      after = entries.at(-1)!.entryId;
      result.entries += entries.length;
      const batch: { event: DeploymentEvent; origin: EventOrigin }[] = [];
      for (const entry of entries) {
        try {
          batch.push({ event: decodeEntry(entry.fields), origin: entry });
        } catch (error) {
          result.undecodable++;
          logger.warn(
            { stream: entry.stream, entry_id: entry.entryId, err: describeCause(error) },
            'shield rebuild: skipped an undecodable entry',
          );
        }
      }
      result.events += await store.logEvents(batch);
      if (entries.length < batchSize) break;
    }
  }
  result.deployments = await recomputeAll(store);
  logger.info(result, 'shield projection rebuilt');
  return result;
}

/**
 * Recomputes every deployment record from Shield's own event log, without reading the streams:
 * for a new projection version, or after the streams were trimmed. Returns how many records.
 */
export async function recomputeShieldRecords(options: { db: Kysely<Database> }): Promise<number> {
  const store = new ShieldStore(options.db);
  await store.clearRecords();
  return recomputeAll(store);
}

async function recomputeAll(store: ShieldStore): Promise<number> {
  let count = 0;
  for (const id of await store.loggedDeploymentIds()) {
    if (await store.recompute(id)) count++;
  }
  return count;
}

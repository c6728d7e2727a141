import type { Kysely } from 'kysely';
import type { EventStreamReader } from '../bus/stream-reader.js';
import { describeCause } from '../errors/index.js';
import { decodeEntry } from '../events/codec.js';
import type { DeploymentEvent } from '../events/envelope.js';
import { type LedgerEvent, rebuildLedger } from '../orchestrator/ledger.js';
import { type Logger, silentLogger } from '../runtime/logging.js';
import type { Database } from '../store/schema.js';
import { type EventOrigin, loggedEventOf, payloadOf } from './event-log.js';
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
  /** Events in Shield's log after the rebuild: the history the records were computed from. */
  events: number;
  /** Of those, events the streams hold that the log did not (logged now). */
  added: number;
  /** Of those, logged events the streams no longer hold (trimmed or deleted), kept. */
  kept: number;
  /** Entries that could not be decoded (skipped, as the live projection dead-letters them). */
  undecodable: number;
  /** Deployment records written. */
  deployments: number;
  /**
   * Records without a `deployment:started` from the orchestrator: their first events were trimmed
   * from the streams before Shield logged them, so their history is partial (ids, sorted).
   */
  incomplete: string[];
  /** Environments in the release ledger, recomputed from the log (see `rebuildLedger`). */
  environments: number;
}

/**
 * Rebuilds Shield's projection without losing history: reads every registered stream from its
 * start (read-only: no consumer group is touched), logs the events the log does not hold yet,
 * keeps every event the log already holds — including those since trimmed from the streams — and
 * recomputes every deployment's record from the log. The records equal those the live projection
 * built from the same events, since a record is a function of its events alone.
 *
 * The event log is never emptied: it is the only complete history once the streams are trimmed
 * (`MATERI_STREAM_RETENTION_MS`). A projection consumer may keep running meanwhile; both log
 * idempotently and recompute under the record's lock.
 */
export async function rebuildShield(options: RebuildShieldOptions): Promise<RebuildShieldResult> {
  const logger = options.logger ?? silentLogger();
  const batchSize = options.batchSize ?? 500;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError(`batchSize must be a positive integer, got ${batchSize}`);
  }
  const store = new ShieldStore(options.db);
  const result: RebuildShieldResult = {
    streams: 0,
    entries: 0,
    events: 0,
    added: 0,
    kept: 0,
    undecodable: 0,
    deployments: 0,
    incomplete: [],
    environments: 0,
  };
  // Ids of the events the streams hold; the log's other events are the ones kept.
  const inStreams = new Set<string>();
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
          const event = decodeEntry(entry.fields);
          inStreams.add(event.id);
          batch.push({ event, origin: entry });
        } catch (error) {
          result.undecodable++;
          logger.warn(
            { stream: entry.stream, entry_id: entry.entryId, err: describeCause(error) },
            'shield rebuild: skipped an undecodable entry',
          );
        }
      }
      result.added += await store.logEvents(batch);
      if (entries.length < batchSize) break;
    }
  }
  result.events = await store.eventCount();
  result.kept = Math.max(0, result.events - inStreams.size);
  result.deployments = await recomputeAll(store);
  result.incomplete = await store.deploymentsWithoutStart();
  result.environments = (await rebuildLedger(options.db, await ledgerEvents(options.db))).environments;
  logger.info(result, 'shield projection rebuilt');
  return result;
}

/**
 * Recomputes every deployment record from Shield's own event log, without reading the streams:
 * for a new projection version. Returns how many records.
 */
export async function recomputeShieldRecords(options: { db: Kysely<Database> }): Promise<number> {
  return recomputeAll(new ShieldStore(options.db));
}

/** The events the release ledger is computed from, in the order they were published. */
async function ledgerEvents(db: Kysely<Database>): Promise<LedgerEvent[]> {
  const rows = await db
    .selectFrom('shield_events')
    .selectAll()
    .where('type', 'in', [
      'deployment:started',
      'deployment:completed',
      'rollback:initiated',
      'rollback:completed',
    ])
    .orderBy('time')
    .orderBy('seq')
    .execute();
  return rows.map((row) => {
    const logged = loggedEventOf(row);
    return {
      type: logged.type,
      deploymentId: logged.deploymentId,
      source: logged.source,
      time: new Date(logged.time),
      data: payloadOf(logged),
    } as LedgerEvent;
  });
}

/** Recomputes each record in place, so readers never see the history empty meanwhile. */
async function recomputeAll(store: ShieldStore): Promise<number> {
  let count = 0;
  for (const id of await store.loggedDeploymentIds()) {
    if (await store.recompute(id)) count++;
  }
  return count;
}

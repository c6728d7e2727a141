import type { Kysely } from 'kysely';
import type { HandlerRegistration } from '../bus/router.js';
import type { Handler } from '../bus/types.js';
import { describeCause } from '../errors/index.js';
import type { DeploymentEvent } from '../events/envelope.js';
import { type Logger, silentLogger } from '../runtime/logging.js';
import type { Database } from '../store/schema.js';
import type { LoggedEvent } from './event-log.js';
import type { IgnoredEvent, UnifiedDeployment } from './record.js';
import { type AppliedEvent, type EventToApply, ShieldStore } from './store/shield-store.js';

/** Deployments whose latest told record size is remembered (the oldest are forgotten first). */
const TOLD_LIMIT = 10_000;

/** The consumer group of Shield's projection. */
export const SHIELD_GROUP = 'shield';

/**
 * Told about every event logged for the first time, and every record that changed: the record
 * after the event (undefined for events without a deployment id, and while a deployment has only
 * ignored events) and the logged event.
 */
export type ShieldChangeListener = (record: UnifiedDeployment | undefined, event: LoggedEvent) => void;

export interface ShieldProjectionOptions {
  db: Kysely<Database>;
  logger?: Logger;
  /** Called after each change is committed (live dashboards subscribe through a {@link ShieldFeed}). */
  onChange?: ShieldChangeListener;
  /** @defaultValue the system clock (only `logged_at` uses it) */
  now?: () => Date;
}

/**
 * Shield's projection as a bus handler: logs every event once (by id) and folds it into the record
 * of its deployment — the record is always the fold of all that deployment's logged events, so
 * delivery order and redeliveries do not matter. Events handed to it while a write is in flight
 * are written together in the next one (see {@link ShieldStore.applyBatch}): one transaction for
 * as many events as the router has in flight. Run it on group {@link SHIELD_GROUP} with
 * `types: ['**']` (see {@link shieldProjectionRegistration}).
 */
export function createShieldProjection(options: ShieldProjectionOptions): Handler {
  const store = new ShieldStore(options.db, { now: options.now });
  const logger = options.logger ?? silentLogger();
  const batches = new BatchWriter(store);
  // Handlers run concurrently, so two records of one deployment can finish in the other order
  // than they were committed. Records only grow (each recompute sees a superset of the events
  // before it), so a record with fewer events than one already told is stale: tell the stored one.
  const told = new Map<string, number>();
  return async (event, context) => {
    const applied = await batches.apply({
      event,
      origin: { stream: context.delivery.stream, entryId: context.delivery.entryId },
    });
    if (applied.inserted && applied.ignored) warnIgnored(logger, event, applied.ignored);
    if (!applied.inserted && !applied.changed) return;
    let record = applied.record;
    if (record) {
      const latest = told.get(record.id) ?? 0;
      if (record.eventCount < latest) record = (await store.getDeployment(record.id)) ?? record;
      told.delete(record.id);
      told.set(record.id, Math.max(latest, record.eventCount));
      if (told.size > TOLD_LIMIT) told.delete(told.keys().next().value!);
    }
    try {
      options.onChange?.(record, applied.logged);
    } catch (error) {
      logger.warn({ err: describeCause(error), event_id: event.id }, 'shield change listener failed');
    }
  };
}

/** Most events written in one transaction. */
const MAX_BATCH = 512;

/**
 * Group commit: one write at a time, each taking every event handed over meanwhile. A write that
 * fails is tried again one event at a time, so an event that cannot be written fails alone (the
 * router retries it) and does not hold back the others.
 */
class BatchWriter {
  readonly #store: ShieldStore;
  #waiting: { item: EventToApply; resolve: (a: AppliedEvent) => void; reject: (e: unknown) => void }[] = [];
  #writing = false;

  constructor(store: ShieldStore) {
    this.#store = store;
  }

  apply(item: EventToApply): Promise<AppliedEvent> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ item, resolve, reject });
      if (!this.#writing) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#waiting.length > 0) {
        const batch = this.#waiting.splice(0, MAX_BATCH);
        try {
          const applied = await this.#store.applyBatch(batch.map((w) => w.item));
          for (const [i, w] of batch.entries()) w.resolve(applied[i]!);
        } catch (error) {
          if (batch.length === 1) {
            batch[0]!.reject(error);
            continue;
          }
          for (const w of batch) {
            try {
              w.resolve((await this.#store.applyBatch([w.item]))[0]!);
            } catch (single) {
              w.reject(single);
            }
          }
        }
      }
    } finally {
      this.#writing = false;
    }
  }
}

/**
 * Says that a newly logged event does not change its record. A result naming a request not
 * logged yet may only be early (streams are read in any order): that is not worth a warning.
 */
function warnIgnored(logger: Logger, event: DeploymentEvent, ignored: IgnoredEvent): void {
  const fields = {
    event_id: event.id,
    type: event.type,
    source: event.source,
    deployment_id: event.deploymentId,
    causation_id: event.causationId,
  };
  if (ignored.code === 'no-request' && event.causationId !== '') {
    logger.debug(fields, `shield: ${ignored.reason} (yet); logged, record unchanged`);
  } else {
    logger.warn(fields, `shield: ignored ${ignored.reason}; logged, record unchanged`);
  }
}

/** Default events in flight of the projection (see {@link ShieldRegistrationOptions.concurrency}). */
export const SHIELD_CONCURRENCY = 256;

export interface ShieldRegistrationOptions extends ShieldProjectionOptions {
  /**
   * Events handled at once by this process: the events in flight are written together, so this
   * is also the most events one transaction writes. @defaultValue {@link SHIELD_CONCURRENCY}
   */
  concurrency?: number;
  /** See `SubscriptionOptions.maxDeliveries`. @defaultValue 5 */
  maxDeliveries?: number;
  /** See `SubscriptionOptions.claimIdleMs`. @defaultValue 30000 */
  claimIdleMs?: number;
  /** Retry delays; see `SubscriptionOptions.backoff`. */
  backoff?: HandlerRegistration['backoff'];
}

/**
 * The router registration of the projection: handler `shield`, group `shield`, every event type
 * (new per-stage streams are discovered), from the beginning of each stream.
 *
 * @example
 * const feed = new ShieldFeed();
 * router.addHandler(shieldProjectionRegistration({ db: store.db, logger, onChange: feed.publish }));
 */
export function shieldProjectionRegistration(options: ShieldRegistrationOptions): HandlerRegistration {
  const concurrency = options.concurrency ?? SHIELD_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`shield concurrency must be a positive integer, got ${concurrency}`);
  }
  return {
    name: 'shield',
    group: SHIELD_GROUP,
    types: ['**'],
    concurrency,
    startFrom: 'beginning',
    ...(options.maxDeliveries === undefined ? {} : { maxDeliveries: options.maxDeliveries }),
    ...(options.claimIdleMs === undefined ? {} : { claimIdleMs: options.claimIdleMs }),
    ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
    handler: createShieldProjection(options),
  };
}

/**
 * The in-process fan-out from the projection to live clients (SSE). Listeners run synchronously
 * and must not throw; one that throws is logged by the projection and the others still run.
 */
export class ShieldFeed {
  readonly #listeners = new Set<ShieldChangeListener>();

  /** Hands a change to every listener; pass it as the projection's `onChange`. */
  readonly publish: ShieldChangeListener = (record, event) => {
    let failure: unknown;
    for (const listener of this.#listeners) {
      try {
        listener(record, event);
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== undefined) throw failure;
  };

  /** Adds a listener; returns the function that removes it. */
  subscribe(listener: ShieldChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Listeners now (connected SSE clients). */
  get size(): number {
    return this.#listeners.size;
  }
}

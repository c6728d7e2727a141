import type { IdempotencyStore, LeaseHolder, Middleware } from '../types.js';

export interface IdempotencyOptions {
  store: IdempotencyStore;
  /**
   * How long a consumer holds an event id while handling it; a crashed consumer's hold expires
   * after this. Keep it at least the claim idle time. @defaultValue 60000
   */
  leaseMs?: number;
  /**
   * Whether a consumer's process is gone (it stopped beating). A lease on a duplicate entry held
   * by a consumer that is gone is taken over at once instead of waiting for it to expire.
   * @defaultValue none: such a lease is waited out
   */
  isConsumerGone?: (consumer: string, group: string) => Promise<boolean>;
}

/** Thrown when another consumer of the group is handling the same event id right now. */
export class EventBusyError extends Error {
  constructor(eventId: string, group: string, holder?: string) {
    super(`event ${eventId} is being handled by another consumer of ${group}${holder ? ` (${holder})` : ''}`);
    this.name = 'EventBusyError';
  }
}

/**
 * Handles an event id at most once per group within the store's window: a redelivery, a reclaim
 * after a crash, or a duplicate entry (a publisher retry) of an event the group already handled
 * successfully is acknowledged without calling the handler. Failed attempts release the id so
 * the retry runs.
 *
 * A lease never outlives its holder: an entry reclaimed from a crashed consumer takes its lease
 * over at once (the store sees the same entry), and so does a duplicate entry whose holder's
 * process is gone, so a crash costs the claim idle time, not the lease time.
 */
export function idempotency(options: IdempotencyOptions): Middleware {
  const { store, isConsumerGone } = options;
  const leaseMs = options.leaseMs ?? 60_000;
  return (next) => async (event, context) => {
    const { group, consumer, stream, entryId } = context.delivery;
    const holder: LeaseHolder = { consumer, stream, entryId };
    const state = await store.begin(group, event.id, leaseMs, holder);
    if (state === 'done') {
      if (context.isLevelEnabled('debug'))
        context.logger.debug('event already handled by this group; skipped');
      return;
    }
    if (state === 'busy') {
      const held = await store.heldBy(group, event.id);
      if (
        held &&
        held.consumer !== consumer &&
        isConsumerGone &&
        (await isConsumerGone(held.consumer, group)) &&
        (await store.takeOver(group, event.id, held.marker, holder, leaseMs))
      ) {
        context.logger.info(
          { previousConsumer: held.consumer },
          'took over the lease of a consumer that is gone',
        );
      } else {
        throw new EventBusyError(event.id, group, held?.consumer);
      }
    }
    try {
      await next(event, context);
    } catch (error) {
      await store.release(group, event.id, holder).catch(() => {});
      throw error;
    }
    // Recorded before the entry is acknowledged, without holding the slot meanwhile.
    context.deferAck(store.complete(group, event.id));
  };
}

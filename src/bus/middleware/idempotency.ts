import type { IdempotencyStore, Middleware } from '../types.js';

export interface IdempotencyOptions {
  store: IdempotencyStore;
  /**
   * How long a consumer holds an event id while handling it; a crashed consumer's hold expires
   * after this. Keep it at least the claim idle time. @defaultValue 60000
   */
  leaseMs?: number;
}

/** Thrown when another consumer of the group is handling the same event id right now. */
export class EventBusyError extends Error {
  constructor(eventId: string, group: string) {
    super(`event ${eventId} is being handled by another consumer of ${group}`);
    this.name = 'EventBusyError';
  }
}

/**
 * Handles an event id at most once per group within the store's window: a redelivery, a reclaim
 * after a crash, or a duplicate entry (a publisher retry) of an event the group already handled
 * successfully is acknowledged without calling the handler. Failed attempts release the id so
 * the retry runs.
 */
export function idempotency(options: IdempotencyOptions): Middleware {
  const leaseMs = options.leaseMs ?? 60_000;
  return (next) => async (event, context) => {
    const group = context.delivery.group;
    const state = await options.store.begin(group, event.id, leaseMs);
    if (state === 'done') {
      if (context.isLevelEnabled('debug'))
        context.logger.debug('event already handled by this group; skipped');
      return;
    }
    if (state === 'busy') throw new EventBusyError(event.id, group);
    try {
      await next(event, context);
    } catch (error) {
      await options.store.release(group, event.id).catch(() => {});
      throw error;
    }
    // Recorded before the entry is acknowledged, without holding the slot meanwhile.
    context.deferAck(options.store.complete(group, event.id));
  };
}

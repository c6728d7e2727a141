import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * The event being handled, carried through async calls so that anything published while handling
 * it inherits its correlation id and names it as the cause.
 */
export interface EventContext {
  correlationId: string;
  /** Id of the event being handled; becomes the causation id of events published meanwhile. */
  eventId: string;
  deploymentId: string;
}

const storage = new AsyncLocalStorage<EventContext>();

/** Runs `fn` with `context` as the current event context. */
export function runInEventContext<T>(context: EventContext, fn: () => T): T {
  return storage.run(context, fn);
}

/** The event context of the running handler, if any. */
export function currentEventContext(): EventContext | undefined {
  return storage.getStore();
}

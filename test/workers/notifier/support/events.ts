import type { Redis } from 'ioredis';
import { prepareEvent } from '../../../../src/bus/outgoing.js';
import type { RedisPublisher } from '../../../../src/bus/redis/publisher.js';
import type { EventDataInit, HandlerContext, OutgoingEvent } from '../../../../src/bus/types.js';
import {
  type DeploymentEvent,
  decodeEntry,
  encodeEntry,
  type NotificationSentEvent,
  streamKey,
} from '../../../../src/events/index.js';
import { testHandlerContext } from '../../../support/handler-context.js';

/** An event as a consumer sees it: encoded to stream entry fields and decoded again. */
export function decodedEvent<T extends string>(
  type: T,
  data: EventDataInit<T>,
  meta: Omit<OutgoingEvent, 'type' | 'data'> = {},
): DeploymentEvent {
  const { event, spec } = prepareEvent(
    { ...meta, type, data },
    { source: 'test/orchestrator', contentType: 'application/json' },
  );
  return decodeEntry(encodeEntry(event, spec));
}

/** Publishes an event through the real publisher and reads it back from its stream (XRANGE + decodeEntry). */
export async function publishedEvent<T extends string>(
  publisher: RedisPublisher,
  redis: Redis,
  type: T,
  data: EventDataInit<T>,
  meta: Omit<OutgoingEvent, 'type' | 'data'> = {},
): Promise<DeploymentEvent> {
  const published = await publisher.publish({ ...meta, type, data });
  const [entry] = await redis.xrange(published.stream, published.entryId, published.entryId);
  return decodeEntry(entry![1]);
}

/** A handler context as the router would build it for a first delivery. */
export function handlerContext(
  publisher: RedisPublisher,
  signal = new AbortController().signal,
): HandlerContext {
  return testHandlerContext({
    stream: `${publisher.prefix}:test`,
    group: 'printery-notifier',
    publisher,
    signal,
  });
}

/** The `notification:sent` events under a prefix, decoded, oldest first. */
export async function notificationsSent(
  redis: Redis,
  prefix: string,
): Promise<(DeploymentEvent<NotificationSentEvent> & { data: NotificationSentEvent })[]> {
  const entries = await redis.xrange(streamKey(prefix, 'notification:sent'), '-', '+');
  return entries.map(([, fields]) => decodeEntry(fields) as DeploymentEvent<NotificationSentEvent>);
}

/** The error a promise rejects with; fails the test when it resolves instead. */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the promise to reject');
}

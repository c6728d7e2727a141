import type { RedisClient } from '../../src/bus/redis/connection.js';
import { RedisIdempotencyStore } from '../../src/bus/redis/idempotency.js';
import { RedisPublisher } from '../../src/bus/redis/publisher.js';
import { RedisSubscriber } from '../../src/bus/redis/subscriber.js';
import type { Subscriber } from '../../src/bus/types.js';
import { fieldsToRecord } from '../../src/events/codec.js';
import { deadLetterStreamKey, replayStreamKey, streamKey } from '../../src/events/streams.js';
import type { BusHarness } from './contract.js';

/**
 * The contract harness of the Redis backend, on a standalone client or a cluster client: the
 * contract suite runs on both. `cleanup` removes the prefix's keys before the client quits.
 */
export function redisHarness(
  client: RedisClient,
  prefix: string,
  cleanup: (client: RedisClient, prefix: string) => Promise<void>,
): BusHarness {
  const subscribers: Subscriber[] = [];
  const toFields = (record: Record<string, string>) => Object.entries(record).flat();
  return {
    prefix,
    publisher: new RedisPublisher({ client, prefix }),
    subscriber(settings) {
      const subscriber = new RedisSubscriber({
        client,
        prefix,
        blockMs: settings?.blockMs ?? 200,
        scanIntervalMs: settings?.scanIntervalMs ?? 50,
        discoveryIntervalMs: settings?.discoveryIntervalMs ?? 100,
      });
      subscribers.push(subscriber);
      return subscriber;
    },
    idempotency: new RedisIdempotencyStore({ client, prefix }),
    async writeRaw(type, fields) {
      await client.xadd(streamKey(prefix, type), '*', ...toFields(fields));
    },
    async writeReplay(group, fields) {
      await client.xadd(replayStreamKey(prefix, group), '*', ...toFields(fields));
    },
    async deadLetters(group) {
      const entries = await client.xrange(deadLetterStreamKey(prefix, group), '-', '+');
      return entries.map(([, fields]) => fieldsToRecord(fields));
    },
    async pendingCount(type, group) {
      try {
        const [count] = (await client.xpending(streamKey(prefix, type), group)) as [number];
        return Number(count);
      } catch {
        return 0;
      }
    },
    async close() {
      await Promise.all(subscribers.map((s) => s.close(0)));
      await cleanup(client, prefix);
      await client.quit();
    },
  };
}

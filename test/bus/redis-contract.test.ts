import { createRedisClient } from '../../src/bus/redis/connection.js';
import { RedisIdempotencyStore } from '../../src/bus/redis/idempotency.js';
import { RedisPublisher } from '../../src/bus/redis/publisher.js';
import { RedisSubscriber } from '../../src/bus/redis/subscriber.js';
import type { Subscriber } from '../../src/bus/types.js';
import { deadLetterStreamKey, replayStreamKey } from '../../src/events/streams.js';
import { deletePrefix, TEST_REDIS_URL, uniquePrefix } from '../support/redis.js';
import { type BusHarness, busContract } from './contract.js';

async function openRedisHarness(): Promise<BusHarness> {
  const prefix = uniquePrefix('contract');
  const client = createRedisClient({ url: TEST_REDIS_URL });
  const subscribers: Subscriber[] = [];
  const publisher = new RedisPublisher({ client, prefix });
  const toFields = (record: Record<string, string>) => Object.entries(record).flat();
  return {
    prefix,
    publisher,
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
      await client.xadd(`${prefix}:${type}`, '*', ...toFields(fields));
    },
    async writeReplay(group, fields) {
      await client.xadd(replayStreamKey(prefix, group), '*', ...toFields(fields));
    },
    async deadLetters(group) {
      const entries = await client.xrange(deadLetterStreamKey(prefix, group), '-', '+');
      return entries.map(([, f]) =>
        Object.fromEntries(Array.from({ length: f.length / 2 }, (_, i) => [f[2 * i]!, f[2 * i + 1]!])),
      );
    },
    async pendingCount(type, group) {
      try {
        const [count] = (await client.xpending(`${prefix}:${type}`, group)) as [number];
        return Number(count);
      } catch {
        return 0;
      }
    },
    async close() {
      await Promise.all(subscribers.map((s) => s.close(0)));
      await deletePrefix(client as never, prefix);
      await client.quit();
    },
  };
}

busContract('Redis Streams', openRedisHarness);

/**
 * The embedded (SQLite) bus against the Redis bus, same operations, same run:
 * - batched publish (publishBatch of 500) and one awaited publish at a time;
 * - consume: Router with a no-op handler, concurrency 50, idempotency middleware on;
 * - end-to-end latency (publish → handler) at 1,000 events/s.
 * The value is the embedded bus, the baseline the Redis bus (`ratio` = embedded / Redis; for
 * latencies lower is better). Target: >= 20,000 events/s each way on the embedded bus.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { idempotency } from '../src/bus/middleware/index.js';
import { createRedisClient } from '../src/bus/redis/connection.js';
import { RedisIdempotencyStore } from '../src/bus/redis/idempotency.js';
import { RedisPublisher } from '../src/bus/redis/publisher.js';
import { RedisSubscriber } from '../src/bus/redis/subscriber.js';
import { Router } from '../src/bus/router.js';
import { openSqliteBus, type SqliteBus } from '../src/bus/sqlite/index.js';
import type { IdempotencyStore, OutgoingEvent, Publisher, Subscriber } from '../src/bus/types.js';
import { report, throughput } from './_support.js';

const url = process.env.MATERI_REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `materi-bench:embedded:${process.pid}`;
const BATCH = 500;
const COUNT_PUBLISH = Number(process.env.BENCH_COUNT ?? 50_000);
const COUNT_CONSUME = Number(process.env.BENCH_CONSUME_COUNT ?? 30_000);
const COUNT_SINGLE = 3_000;
const TARGET = '>= 20000 events/s';

const dir = mkdtempSync(join(tmpdir(), 'materi-bench-embedded-'));
const redis = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
let redisUp = true;
try {
  await redis.connect();
  await redis.ping();
} catch (error) {
  redisUp = false;
  process.stderr.write(`embedded: Redis at ${url} unreachable (${(error as Error).message}); no baseline\n`);
}

function input(i: number): OutgoingEvent {
  return {
    type: 'deployment:stage:api:completed',
    data: {
      deploymentId: `dep-${i % 100}`,
      stage: 'api',
      status: 3,
      durationMs: 1200 + (i % 50),
      services: ['api'],
    },
    correlationId: '4b9c2a1e-6f8d-4e21-9a77-5c3d2e1f0a9b',
  };
}

function started(i: number): OutgoingEvent {
  return {
    type: 'deployment:started',
    data: {
      deploymentId: `dep-${i}`,
      version: 'v1.4.2',
      environment: 'production',
      services: ['api', 'web'],
    },
  };
}

let files = 0;
async function freshBus(): Promise<SqliteBus> {
  return openSqliteBus(join(dir, `bus-${files++}.db`), { prefix, source: 'bench' });
}

async function cleanupRedis(): Promise<void> {
  if (!redisUp) return;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
}

async function publishBatched(publisher: Publisher, n: number, make = input): Promise<number> {
  const inputs = Array.from({ length: n }, (_, i) => make(i));
  return throughput(n, async () => {
    for (let i = 0; i < n; i += BATCH) await publisher.publishBatch(inputs.slice(i, i + BATCH));
  });
}

async function publishSingle(publisher: Publisher, n: number): Promise<number> {
  return throughput(n, async () => {
    for (let i = 0; i < n; i++) await publisher.publish(input(i));
  });
}

/** Events/s of a Router draining `n` waiting events with a no-op handler. */
async function consume(
  n: number,
  subscriber: Subscriber,
  publisher: Publisher,
  store: IdempotencyStore,
): Promise<number> {
  await publishBatched(publisher, n, started);
  let done = 0;
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const router = new Router({ subscriber, publisher, middleware: [idempotency({ store })] });
  router.addHandler({
    name: 'noop',
    group: 'bench',
    types: ['deployment:started'],
    concurrency: 50,
    handler: async () => {
      if (++done === n) finish();
    },
  });
  const begin = performance.now();
  await router.start();
  await finished;
  const rate = n / ((performance.now() - begin) / 1000);
  await router.close(1000);
  await subscriber.close(0);
  return rate;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const now = () => performance.timeOrigin + performance.now();

/** Publish → handler latencies at `rate` events/s for `seconds`. */
async function latency(subscriber: Subscriber, publisher: Publisher, rate: number, seconds: number) {
  const latencies: number[] = [];
  const router = new Router({ subscriber, publisher });
  router.addHandler({
    name: 'lat',
    group: 'lat',
    types: ['deployment:started'],
    concurrency: 50,
    startFrom: 'latest',
    handler: async (e) => void latencies.push(now() - Number((e.data as { version: string }).version)),
  });
  await router.start();
  const total = rate * seconds;
  const interval = 1000 / rate;
  const begin = performance.now();
  for (let i = 0; i < total; i++) {
    const wait = begin + i * interval - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    await publisher.publish({
      type: 'deployment:started',
      data: { deploymentId: `lat-${i}`, version: String(now()) },
    });
  }
  const deadline = Date.now() + 5000;
  while (latencies.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await router.close(1000);
  await subscriber.close(0);
  return latencies;
}

function compare(metric: string, value: number, baseline: number, target?: string): void {
  if (redisUp) report({ bench: 'embedded', metric, value, baseline, target });
  else report({ bench: 'embedded', metric, value, baseline: 0, ratio: 0, target });
}

try {
  // Publish: best of three rounds each, alternating so both see the same machine state.
  let embedded = 0;
  let viaRedis = 0;
  const redisPublisher = new RedisPublisher({ client: redis, prefix, source: 'bench' });
  for (let round = 0; round < 3; round++) {
    const bus = await freshBus();
    await publishBatched(bus.publisher, 5000);
    embedded = Math.max(embedded, await publishBatched(bus.publisher, COUNT_PUBLISH));
    await bus.close();
    if (redisUp) {
      viaRedis = Math.max(viaRedis, await publishBatched(redisPublisher, COUNT_PUBLISH));
      await cleanupRedis();
    }
  }
  compare('publish_batched_events_per_s', embedded, viaRedis, TARGET);

  const single = await freshBus();
  const embeddedSingle = await publishSingle(single.publisher, COUNT_SINGLE);
  await single.close();
  const redisSingle = redisUp ? await publishSingle(redisPublisher, COUNT_SINGLE) : 0;
  await cleanupRedis();
  compare('publish_single_events_per_s', embeddedSingle, redisSingle);

  // Consume: best of two rounds each, alternating.
  let embeddedConsume = 0;
  let redisConsume = 0;
  for (let round = 0; round < 2; round++) {
    const consumeBus = await freshBus();
    embeddedConsume = Math.max(
      embeddedConsume,
      await consume(COUNT_CONSUME, consumeBus.subscriber(), consumeBus.publisher, consumeBus.idempotency),
    );
    await consumeBus.close();
    if (redisUp) {
      const client = createRedisClient({ url });
      const markers = createRedisClient({ url });
      redisConsume = Math.max(
        redisConsume,
        await consume(
          COUNT_CONSUME,
          new RedisSubscriber({ client, prefix, blockMs: 100 }),
          new RedisPublisher({ client, prefix }),
          new RedisIdempotencyStore({ client: markers, prefix }),
        ),
      );
      await client.quit();
      await markers.quit();
      await cleanupRedis();
    }
  }
  compare('consume_events_per_s', embeddedConsume, redisConsume, TARGET);

  // Latency at 1,000 events/s.
  const latencyBus = await freshBus();
  const embeddedLatency = await latency(latencyBus.subscriber(), latencyBus.publisher, 1000, 3);
  await latencyBus.close();
  let redisLatency: number[] = [];
  if (redisUp) {
    const client = createRedisClient({ url });
    redisLatency = await latency(
      new RedisSubscriber({ client, prefix: `${prefix}:lat`, blockMs: 1000 }),
      new RedisPublisher({ client, prefix: `${prefix}:lat` }),
      1000,
      3,
    );
    await client.quit();
    await cleanupRedis();
  }
  for (const p of [50, 99]) {
    compare(
      `e2e_latency_p${p}_ms_at_1000_per_s`,
      percentile(embeddedLatency, p),
      redisUp ? percentile(redisLatency, p) : 0,
    );
  }
} finally {
  await cleanupRedis();
  redis.disconnect();
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Consumer throughput and latency, side by side in one run:
 * - ours: Router + RedisSubscriber, concurrency 50, the middleware `materi up` runs (logging, idempotency),
 *   no-op handler, acks batched per tick;
 * - raw: an XREADGROUP COUNT 200 + pipelined XACK loop with ioredis;
 * - BullMQ: a Worker with concurrency 50 and a no-op processor.
 * Then end-to-end latency at 1,000 events/s, ours against a raw blocking XREADGROUP loop.
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { idempotency, logging } from '../src/bus/middleware/index.js';
import { createRedisClient } from '../src/bus/redis/connection.js';
import { RedisIdempotencyStore } from '../src/bus/redis/idempotency.js';
import { RedisPublisher } from '../src/bus/redis/publisher.js';
import { RedisSubscriber } from '../src/bus/redis/subscriber.js';
import { Router } from '../src/bus/router.js';
import { silentLogger } from '../src/runtime/logging.js';
import { report } from './_support.js';

const url = process.env.MATERI_REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `materi-bench:consume:${process.pid}`;
const COUNT = Number(process.env.BENCH_COUNT ?? 30_000);
const redis = new Redis(url);

async function cleanup(): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
}

async function fill(publisher: RedisPublisher, n: number): Promise<void> {
  for (let i = 0; i < n; i += 500) {
    await publisher.publishBatch(
      Array.from({ length: Math.min(500, n - i) }, (_, j) => ({
        type: 'deployment:started',
        data: {
          deploymentId: `dep-${i + j}`,
          version: 'v1.4.2',
          environment: 'production',
          services: ['api', 'web'],
        },
      })),
    );
  }
}

async function ours(n: number): Promise<number> {
  const client = createRedisClient({ url });
  const markers = createRedisClient({ url, autoPipelining: true });
  const publisher = new RedisPublisher({ client, prefix });
  await fill(publisher, n);
  let done = 0;
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const router = new Router({
    subscriber: new RedisSubscriber({ client, prefix, blockMs: 100 }),
    publisher,
    logger: silentLogger(),
    middleware: [logging(), idempotency({ store: new RedisIdempotencyStore({ client: markers, prefix }) })],
  });
  router.addHandler({
    name: 'noop',
    group: 'bench-ours',
    types: ['deployment:started'],
    concurrency: 50,
    handler: async () => {
      if (++done === n) finish();
    },
  });
  const started = performance.now();
  await router.start();
  await finished;
  const rate = n / ((performance.now() - started) / 1000);
  await router.close(1000);
  await client.quit();
  await markers.quit();
  return rate;
}

async function raw(n: number): Promise<number> {
  const publisher = new RedisPublisher({ client: redis, prefix });
  await fill(publisher, n);
  const key = `${prefix}:deployment:started`;
  await redis.xgroup('CREATE', key, 'bench-raw', '0');
  const reader = new Redis(url);
  const started = performance.now();
  let done = 0;
  while (done < n) {
    const reply = (await reader.xreadgroup(
      'GROUP',
      'bench-raw',
      'c',
      'COUNT',
      200,
      'BLOCK',
      100,
      'STREAMS',
      key,
      '>',
    )) as [string, [string, string[]][]][] | null;
    const entries = reply?.[0]?.[1] ?? [];
    if (entries.length === 0) continue;
    await reader.xack(key, 'bench-raw', ...entries.map(([id]) => id));
    done += entries.length;
  }
  const rate = n / ((performance.now() - started) / 1000);
  reader.disconnect();
  return rate;
}

async function bullmq(n: number): Promise<number> {
  const connection = { url, maxRetriesPerRequest: null } as never;
  const name = `${prefix.replace(/:/g, '-')}-bull`;
  const queue = new Queue(name, { connection, prefix: `${prefix}:bull` });
  for (let i = 0; i < n; i += 500) {
    await queue.addBulk(
      Array.from({ length: Math.min(500, n - i) }, (_, j) => ({
        name: 'deployment:started',
        data: {
          deploymentId: `dep-${i + j}`,
          version: 'v1.4.2',
          environment: 'production',
          services: ['api', 'web'],
        },
        opts: { removeOnComplete: true },
      })),
    );
  }
  let done = 0;
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const started = performance.now();
  const worker = new Worker(
    name,
    async () => {
      if (++done === n) finish();
    },
    { connection, prefix: `${prefix}:bull`, concurrency: 50 },
  );
  await finished;
  const rate = n / ((performance.now() - started) / 1000);
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  return rate;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const now = () => performance.timeOrigin + performance.now();

async function latency(kind: 'ours' | 'raw', rate: number, seconds: number): Promise<number[]> {
  const client = createRedisClient({ url });
  const publisher = new RedisPublisher({ client, prefix: `${prefix}:lat-${kind}` });
  const latencies: number[] = [];
  const total = rate * seconds;
  let stop: () => Promise<void>;
  const record = (sentAt: string) => latencies.push(now() - Number(sentAt));
  if (kind === 'ours') {
    const markers = createRedisClient({ url, autoPipelining: true });
    const router = new Router({
      subscriber: new RedisSubscriber({ client, prefix: `${prefix}:lat-${kind}`, blockMs: 1000 }),
      publisher,
      middleware: [logging(), idempotency({ store: new RedisIdempotencyStore({ client: markers, prefix }) })],
    });
    router.addHandler({
      name: 'lat',
      group: 'lat',
      types: ['deployment:started'],
      concurrency: 50,
      handler: async (e) => void record((e.data as { version: string }).version),
    });
    await router.start();
    stop = async () => {
      await router.close(1000);
      await markers.quit();
    };
  } else {
    const key = `${prefix}:lat-${kind}:deployment:started`;
    await redis.xgroup('CREATE', key, 'lat', '$', 'MKSTREAM');
    const reader = new Redis(url);
    let running = true;
    const loop = (async () => {
      while (running) {
        const reply = (await reader.xreadgroup(
          'GROUP',
          'lat',
          'c',
          'COUNT',
          200,
          'BLOCK',
          1000,
          'STREAMS',
          key,
          '>',
        )) as [string, [string, string[]][]][] | null;
        const entries = reply?.[0]?.[1] ?? [];
        for (const [, fields] of entries) record(JSON.parse(fields[fields.indexOf('data') + 1]!).version);
        if (entries.length) await reader.xack(key, 'lat', ...entries.map(([id]) => id));
      }
    })();
    stop = async () => {
      running = false;
      await loop;
      reader.disconnect();
    };
  }
  const interval = 1000 / rate;
  const start = performance.now();
  for (let i = 0; i < total; i++) {
    const due = start + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    await publisher.publish({
      type: 'deployment:started',
      data: { deploymentId: `lat-${i}`, version: String(now()) },
    });
  }
  const deadline = Date.now() + 5000;
  while (latencies.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await stop();
  await client.quit();
  return latencies;
}

try {
  await cleanup();
  const rawRate = await raw(COUNT);
  await cleanup();
  const ourRate = await ours(COUNT);
  await cleanup();
  const bullRate = await bullmq(Math.min(COUNT, 20_000));
  await cleanup();
  report({
    bench: 'consume',
    metric: 'events_per_s_vs_raw',
    value: ourRate,
    baseline: rawRate,
    target: '>= 0.8',
  });
  report({
    bench: 'consume',
    metric: 'events_per_s_vs_bullmq',
    value: ourRate,
    baseline: bullRate,
    target: '>= 10',
  });
  const rawLat = await latency('raw', 1000, 3);
  const ourLat = await latency('ours', 1000, 3);
  for (const p of [50, 99]) {
    const value = percentile(ourLat, p);
    const baseline = percentile(rawLat, p);
    // For latency the ratio is ours / raw: lower is better.
    report({
      bench: 'consume',
      metric: `e2e_latency_p${p}_ms_at_1000_per_s`,
      value,
      baseline,
      target: p === 99 ? '<= 1.5' : '',
    });
  }
} finally {
  await cleanup();
  await redis.quit();
}

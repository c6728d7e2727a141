/**
 * Publisher throughput against the raw ioredis client doing the same XADDs with the same payloads,
 * in the same run: batched (pipelines of 500) and one awaited XADD at a time.
 */
import { Redis } from 'ioredis';
import { prepareEvent } from '../src/bus/outgoing.js';
import { RedisPublisher } from '../src/bus/redis/publisher.js';
import type { OutgoingEvent } from '../src/bus/types.js';
import { encodeEntry } from '../src/events/codec.js';
import { bestOf, report, throughput } from './_support.js';

const url = process.env.MATERI_REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `materi-bench:publish:${process.pid}`;
const BATCH = 500;
const COUNT_BATCHED = 50_000;
const COUNT_SINGLE = 5_000;

const redis = new Redis(url);

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

const sample = encodeEntry(
  prepareEvent(input(1), { source: 'bench', contentType: 'application/json' }).event,
);
const payloadBytes = sample.reduce((n, f) => n + Buffer.byteLength(f), 0);
process.stderr.write(`publish: ${payloadBytes}-byte entries\n`);

async function cleanup() {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
}

async function rawBatched(n: number): Promise<number> {
  const fields = Array.from({ length: n }, (_, i) =>
    encodeEntry(prepareEvent(input(i), { source: 'bench', contentType: 'application/json' }).event),
  );
  return throughput(n, async () => {
    for (let i = 0; i < n; i += BATCH) {
      const pipeline = redis.pipeline();
      for (let j = i; j < Math.min(n, i + BATCH); j++) pipeline.xadd(`${prefix}:raw`, '*', ...fields[j]!);
      await pipeline.exec();
    }
  });
}

async function oursBatched(publisher: RedisPublisher, n: number): Promise<number> {
  const inputs = Array.from({ length: n }, (_, i) => input(i));
  return throughput(n, async () => {
    for (let i = 0; i < n; i += BATCH) await publisher.publishBatch(inputs.slice(i, i + BATCH));
  });
}

async function rawSingle(n: number): Promise<number> {
  const fields = Array.from({ length: n }, (_, i) =>
    encodeEntry(prepareEvent(input(i), { source: 'bench', contentType: 'application/json' }).event),
  );
  return throughput(n, async () => {
    for (let i = 0; i < n; i++) await redis.xadd(`${prefix}:raw`, '*', ...fields[i]!);
  });
}

async function oursSingle(publisher: RedisPublisher, n: number): Promise<number> {
  return throughput(n, async () => {
    for (let i = 0; i < n; i++) await publisher.publish(input(i));
  });
}

const publisher = new RedisPublisher({ client: redis, prefix, source: 'bench' });
try {
  await oursBatched(publisher, 5000);
  await rawBatched(5000);
  let raw = 0;
  let ours = 0;
  // Best of five each, alternating which goes first, on an emptied Redis each time: the machine
  // (two cores shared with Redis) is noisy, and the best run is the one least disturbed.
  for (let round = 0; round < 5; round++) {
    const runRaw = async () => {
      raw = Math.max(raw, await rawBatched(COUNT_BATCHED));
      await cleanup();
    };
    const runOurs = async () => {
      ours = Math.max(ours, await oursBatched(publisher, COUNT_BATCHED));
      await cleanup();
    };
    if (round % 2 === 0) await runRaw().then(runOurs);
    else await runOurs().then(runRaw);
  }
  report({ bench: 'publish', metric: 'batched_events_per_s', value: ours, baseline: raw, target: '>= 0.85' });
  const rawOne = await bestOf(2, () => rawSingle(COUNT_SINGLE));
  const oursOne = await bestOf(2, () => oursSingle(publisher, COUNT_SINGLE));
  report({ bench: 'publish', metric: 'single_events_per_s', value: oursOne, baseline: rawOne });
} finally {
  await cleanup();
  await redis.quit();
}

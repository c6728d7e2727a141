/**
 * The Redis backend on a Redis Cluster (three masters started for this file): the whole bus
 * contract, plus what a cluster changes — stream keys in different hash slots on different nodes,
 * pipelines split per slot, dead-lettering without MULTI, inspection and trimming per key.
 */
import type { Cluster } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient, isCluster } from '../../src/bus/redis/connection.js';
import { RedisIdempotencyStore } from '../../src/bus/redis/idempotency.js';
import { RedisInspector } from '../../src/bus/redis/inspector.js';
import { RedisPublisher } from '../../src/bus/redis/publisher.js';
import { RedisSubscriber } from '../../src/bus/redis/subscriber.js';
import { Router } from '../../src/bus/router.js';
import type { OutgoingEvent } from '../../src/bus/types.js';
import { UnrecoverableError } from '../../src/errors/index.js';
import {
  deadLetterRegistryKey,
  deadLetterStreamKey,
  replayStreamKey,
  streamKey,
  streamRegistryKey,
} from '../../src/events/streams.js';
import { deleteClusterPrefix, redisClusterForFile, slotOf } from '../support/cluster.js';
import { eventually, uniquePrefix } from '../support/redis.js';
import { type BusHarness, busContract } from './contract.js';
import { redisHarness } from './redis-harness.js';

const cluster = redisClusterForFile();

function openClusterClient(options: { autoPipelining?: boolean } = {}): Cluster {
  const client = createRedisClient({ url: cluster().url, cluster: true, ...options });
  if (!isCluster(client)) throw new Error('expected a cluster client');
  return client;
}

/** A valid event of a type: stage events also name their stage. */
function sampleEvent(type: string, deploymentId = 'd'): OutgoingEvent {
  const stage = type.startsWith('deployment:stage:') ? type.split(':')[2] : undefined;
  return { type, data: stage ? { deploymentId, stage } : { deploymentId } } as OutgoingEvent;
}

function toRecord(fields: string[]): Record<string, string> {
  return Object.fromEntries(
    Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i]!, fields[2 * i + 1]!]),
  );
}

/** The masters that serve the streams of `types` under `prefix` (from CLUSTER SLOTS, as a client routes). */
async function mastersOf(client: Cluster, prefix: string, types: string[]): Promise<Set<string>> {
  const ranges = await client.cluster('SLOTS');
  return new Set(
    types.map((type) => {
      const slot = slotOf(streamKey(prefix, type));
      const range = ranges.find(([from, to]) => slot >= from && slot <= to);
      if (!range) throw new Error(`no master serves slot ${slot}`);
      const [, , master] = range;
      return `${master![0]}:${master![1]}`;
    }),
  );
}

/** A fresh prefix under which the streams of `types` are spread over all three masters. */
/** A prefix whose streams of `types` are spread over all three masters, each in a slot of its own. */
async function prefixOnEveryMaster(client: Cluster, name: string, types: string[]): Promise<string> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const candidate = uniquePrefix(name);
    // 14 random slots out of 16,384 coincide about once in 180 prefixes.
    const slots = new Set(types.map((t) => slotOf(streamKey(candidate, t))));
    if (slots.size !== types.length) continue;
    if ((await mastersOf(client, candidate, types)).size === 3) return candidate;
  }
  throw new Error(`no prefix spreads ${types.join(', ')} over three masters`);
}

async function openClusterHarness(): Promise<BusHarness> {
  return redisHarness(openClusterClient(), uniquePrefix('cluster-contract'), (client, prefix) =>
    deleteClusterPrefix(client as Cluster, prefix),
  );
}

busContract('Redis Cluster', openClusterHarness);

describe('Redis backend on a cluster', () => {
  let client: Cluster;
  let prefix: string;
  const closers: (() => Promise<unknown>)[] = [];

  beforeAll(() => {
    client = openClusterClient();
  });
  afterAll(async () => {
    await client.quit();
  });
  afterEach(async () => {
    while (closers.length > 0) await closers.pop()!();
    await deleteClusterPrefix(client, prefix);
  });

  const types = [
    'deployment:started',
    'deployment:completed',
    'deployment:failed',
    'validation:started',
    'validation:completed',
    'dependency:check:started',
    'dependency:check:completed',
    'health:check:started',
    'health:check:completed',
    'rollback:initiated',
    'rollback:completed',
    'notification:sent',
    'deployment:stage:api:started',
    'deployment:stage:web:completed',
  ];

  it('publishes a batch across types whose streams live on different nodes, each in order', async () => {
    prefix = await prefixOnEveryMaster(client, 'cluster-pub', types);
    const publisher = new RedisPublisher({ client, prefix });
    const batch: OutgoingEvent[] = [];
    for (let round = 0; round < 3; round++) {
      for (const type of types) batch.push(sampleEvent(type, `d-${round}`));
    }
    // The point of the test: one batch whose keys span slots and masters.
    expect(new Set(types.map((t) => slotOf(streamKey(prefix, t)))).size).toBe(types.length);

    const published = await publisher.publishBatch(batch);

    expect(published.map((p) => p.event.type)).toEqual(batch.map((b) => b.type));
    for (const type of types) {
      const key = streamKey(prefix, type);
      const entries = await client.xrange(key, '-', '+');
      const mine = published.filter((p) => p.event.type === type);
      expect(entries.map(([id]) => id)).toEqual(mine.map((p) => p.entryId));
      expect(entries.map(([, f]) => toRecord(f).deployment_id)).toEqual(['d-0', 'd-1', 'd-2']);
      expect(toRecord(entries[0]![1])).toMatchObject({ id: mine[0]!.event.id, type });
    }
    expect((await client.smembers(streamRegistryKey(prefix))).sort()).toEqual([...types].sort());
  });

  it('trims a stream on a cluster without dropping what a group still needs', async () => {
    prefix = uniquePrefix('cluster-trim');
    const publisher = new RedisPublisher({ client, prefix });
    const key = streamKey(prefix, 'deployment:started');
    const ids = (
      await publisher.publishBatch(
        Array.from({ length: 10 }, (_, i) => ({
          type: 'deployment:started',
          data: { deploymentId: `${i}` },
        })),
      )
    ).map((p) => p.entryId);
    await client.xgroup('CREATE', key, 'readers', '0');
    await client.xreadgroup('GROUP', 'readers', 'c1', 'COUNT', 6, 'STREAMS', key, '>');
    await client.xack(key, 'readers', ids[0]!, ids[1]!, ids[2]!, ids[3]!);

    const result = await publisher.trim('deployment:started', { maxLen: 2 });

    expect(result).toEqual({ stream: key, removed: 4, protectedByGroups: true });
    expect((await client.xrange(key, '-', '+')).map(([id]) => id)).toEqual(ids.slice(4));
    const unread = await publisher.trim('notification:sent', { maxLen: 2 });
    expect(unread.removed).toBe(0);
  });

  it('reads one group from streams on every master with a single subscription', async () => {
    prefix = await prefixOnEveryMaster(client, 'cluster-read', types);
    const publisher = new RedisPublisher({ client, prefix });
    const handled: string[] = [];
    const subscriber = new RedisSubscriber({ client, prefix, scanIntervalMs: 50, clusterPollMs: 20 });
    closers.push(() => subscriber.close(0));
    await subscriber.subscribe({ group: 'everything', types: ['**'], concurrency: 4 }, async (message) => {
      handled.push(message.fields.type!);
      return { kind: 'ack' };
    });
    await publisher.publishBatch(types.map((type) => sampleEvent(type)));
    await eventually(() => handled.length === types.length, 8000);
    expect([...handled].sort()).toEqual([...types].sort());
    for (const type of types) {
      const [pending] = (await client.xpending(streamKey(prefix, type), 'everything')) as [number];
      expect(Number(pending)).toBe(0);
    }
  });

  it('reads a new entry within about one poll interval when idle', async () => {
    prefix = uniquePrefix('cluster-latency');
    const publisher = new RedisPublisher({ client, prefix });
    const latencies: number[] = [];
    const subscriber = new RedisSubscriber({ client, prefix, clusterPollMs: 50 });
    closers.push(() => subscriber.close(0));
    await subscriber.subscribe({ group: 'quick', types: ['deployment:started'] }, async (message) => {
      latencies.push(Date.now() - new Date(message.fields.time!).getTime());
      return { kind: 'ack' };
    });
    for (let i = 0; i < 5; i++) {
      await publisher.publish({ type: 'deployment:started', data: { deploymentId: `${i}` } });
      await eventually(() => latencies.length === i + 1, 3000, 5);
      await new Promise((r) => setTimeout(r, 30 + i * 7));
    }
    // 50 ms of polling plus round trips; a blocking read it is not, a stall it must not be.
    expect(Math.max(...latencies)).toBeLessThan(400);
  });

  it('dead-letters without MULTI: entry, registry and ack all land although their slots differ', async () => {
    prefix = uniquePrefix('cluster-dlq');
    const group = 'cluster-strict';
    const source = streamKey(prefix, 'validation:started');
    expect(
      new Set([source, deadLetterStreamKey(prefix, group), deadLetterRegistryKey(prefix)].map(slotOf)).size,
    ).toBe(3);
    const publisher = new RedisPublisher({ client, prefix });
    const subscriber = new RedisSubscriber({ client, prefix, scanIntervalMs: 50, clusterPollMs: 20 });
    closers.push(() => subscriber.close(0));
    const router = new Router({ subscriber, publisher });
    router.addHandler({
      name: group,
      group,
      types: ['validation:started'],
      handler: async () => {
        throw new UnrecoverableError('bad spec');
      },
    });
    await router.start();
    closers.push(() => router.close(0));
    const { event, entryId } = await publisher.publish({
      type: 'validation:started',
      data: { deploymentId: 'd' },
    });

    const letters = await eventually(async () => {
      const entries = await client.xrange(deadLetterStreamKey(prefix, group), '-', '+');
      return entries.length > 0 ? entries.map(([, f]) => toRecord(f)) : undefined;
    });
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({
      source_stream: source,
      entry_id: entryId,
      event_id: event.id,
      reason: 'unrecoverable',
      error: 'bad spec',
    });
    expect(await client.smembers(deadLetterRegistryKey(prefix))).toEqual([group]);
    await eventually(async () => Number(((await client.xpending(source, group)) as [number])[0]) === 0);
  });

  it('renews the claims of slow handlers whose entries sit on different nodes', async () => {
    const slowTypes = ['health:check:started', 'dependency:check:started', 'rollback:initiated'];
    prefix = await prefixOnEveryMaster(client, 'cluster-renew', slowTypes);
    const publisher = new RedisPublisher({ client, prefix });
    const runs: string[] = [];
    const subscriber = new RedisSubscriber({ client, prefix, scanIntervalMs: 50, clusterPollMs: 20 });
    const rival = new RedisSubscriber({ client, prefix, scanIntervalMs: 50, clusterPollMs: 20 });
    closers.push(
      () => subscriber.close(0),
      () => rival.close(0),
    );
    const slow = async (message: { fields: Record<string, string>; consumer: string }) => {
      runs.push(`${message.fields.type}@${message.consumer}`);
      await new Promise((r) => setTimeout(r, 1200));
      return { kind: 'ack' } as const;
    };
    const options = { group: 'slow', types: slowTypes, concurrency: 3, claimIdleMs: 300 };
    await subscriber.subscribe({ ...options, slot: 0 }, slow);
    await publisher.publishBatch(
      slowTypes.map((type) => ({ type, data: { deploymentId: 'd' } })) as OutgoingEvent[],
    );
    await eventually(() => runs.length === 3);
    // A second consumer that would take any entry idle for 300 ms.
    await rival.subscribe({ ...options, slot: 1 }, slow);
    await eventually(async () => {
      const counts = await Promise.all(
        slowTypes.map(async (t) =>
          Number(((await client.xpending(streamKey(prefix, t), 'slow')) as [number])[0]),
        ),
      );
      return counts.every((c) => c === 0);
    }, 8000);
    expect(runs).toHaveLength(3);
  });

  it('reports groups, consumers and lag through the inspector', async () => {
    prefix = uniquePrefix('cluster-inspect');
    const publisher = new RedisPublisher({ client, prefix });
    const inspector = new RedisInspector({ client, prefix, heartbeatIntervalMs: 1000 });
    await inspector.beat({
      host: 'h1',
      pid: 42,
      role: 'worker',
      groups: ['watcher'],
      startedAt: new Date(),
      beatAt: new Date(),
    });
    await publisher.publishBatch([
      { type: 'deployment:started', data: { deploymentId: 'a' } },
      { type: 'rollback:initiated', data: { deploymentId: 'b' } },
      { type: 'rollback:initiated', data: { deploymentId: 'c' } },
    ]);
    const started = streamKey(prefix, 'deployment:started');
    const rollback = streamKey(prefix, 'rollback:initiated');
    await client.xgroup('CREATE', started, 'watcher', '0');
    await client.xgroup('CREATE', rollback, 'watcher', '0');
    await client.xgroup('CREATE', replayStreamKey(prefix, 'watcher'), 'watcher', '0', 'MKSTREAM');
    await client.xreadgroup('GROUP', 'watcher', 'watcher:h1:42:0', 'COUNT', 1, 'STREAMS', rollback, '>');

    const [group] = await inspector.groups();

    expect(group).toMatchObject({ group: 'watcher', pending: 1, lag: 2, deadLettered: 0 });
    expect(group!.streams.map((s) => s.stream).sort()).toEqual(
      [started, rollback, replayStreamKey(prefix, 'watcher')].sort(),
    );
    expect(group!.consumers).toEqual([
      expect.objectContaining({ name: 'watcher:h1:42:0', pending: 1, host: 'h1', pid: 42, state: 'alive' }),
    ]);
    expect((await inspector.heartbeats()).map((h) => `${h.host}:${h.pid}`)).toEqual(['h1:42']);
  });

  it('keeps idempotency markers on an auto-pipelined cluster connection', async () => {
    prefix = uniquePrefix('cluster-markers');
    const markers = openClusterClient({ autoPipelining: true });
    closers.push(() => markers.quit());
    const store = new RedisIdempotencyStore({ client: markers, prefix });
    const ids = Array.from({ length: 40 }, (_, i) => `event-${i}`);
    // All in one tick: the auto-pipeline must split them by slot.
    expect(await Promise.all(ids.map((id) => store.begin('g', id, 5000)))).toEqual(ids.map(() => 'acquired'));
    expect(await Promise.all(ids.map((id) => store.begin('g', id, 5000)))).toEqual(ids.map(() => 'busy'));
    await Promise.all(ids.slice(0, 20).map((id) => store.complete('g', id)));
    await Promise.all(ids.slice(20).map((id) => store.release('g', id)));
    expect(await Promise.all(ids.map((id) => store.begin('g', id, 5000)))).toEqual([
      ...ids.slice(0, 20).map(() => 'done'),
      ...ids.slice(20).map(() => 'acquired'),
    ]);
  });

  it('refuses a clusterPollMs that is not a positive integer, naming the option', () => {
    prefix = uniquePrefix('cluster-options');
    expect(() => new RedisSubscriber({ client, prefix, clusterPollMs: 0 })).toThrow(
      /clusterPollMs must be a positive integer, got 0/,
    );
  });
});

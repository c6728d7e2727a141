/**
 * The Redis backend through a cluster failover: three masters with a replica each; the master of
 * a stream is killed and its replica takes over while events are published and consumed.
 */
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { createRedisClient, isCluster } from '../../src/bus/redis/connection.js';
import { RedisPublisher } from '../../src/bus/redis/publisher.js';
import { RedisSubscriber } from '../../src/bus/redis/subscriber.js';
import { streamKey } from '../../src/events/streams.js';
import { redisClusterForFile, slotOf } from '../support/cluster.js';
import { eventually, uniquePrefix } from '../support/redis.js';

const cluster = redisClusterForFile({ replicas: 1 });

/** Ports of the master serving a key's slot and of its replica, as a node of the cluster sees them. */
async function servingPorts(port: number, key: string): Promise<{ master: number; replica: number }> {
  const node = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
  try {
    const slot = slotOf(key);
    const range = (await node.cluster('SLOTS')).find(([from, to]) => slot >= from && slot <= to);
    const master = range?.[2];
    if (!master) throw new Error(`no master serves slot ${slot}`);
    // CLUSTER SLOTS leaves out replicas until they report a replication offset; CLUSTER NODES
    // lists them at once: `<id> <host:port@bus> <flags> <master id> ...`.
    const lines = ((await node.cluster('NODES')) as string).trim().split('\n');
    const replica = lines
      .map((line) => line.split(' '))
      .find((f) => f[2]!.includes('slave') && f[3] === master[2]);
    if (!replica) throw new Error(`the master of slot ${slot} has no replica`);
    return { master: master[1], replica: Number(replica[1]!.split('@')[0]!.split(':').pop()) };
  } finally {
    node.disconnect();
  }
}

async function info(port: number, section: string): Promise<Record<string, string>> {
  const node = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    const text = await node.info(section);
    return Object.fromEntries(
      text
        .split('\r\n')
        .filter((line) => line.includes(':'))
        .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1)]),
    );
  } finally {
    node.disconnect();
  }
}

describe('Redis backend through a cluster failover', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    while (closers.length > 0) await closers.pop()!().catch(() => {});
  });

  it('keeps publishing and consuming, losing nothing, when a master fails over to its replica', async () => {
    const prefix = uniquePrefix('failover');
    const client = createRedisClient({ url: cluster().url, cluster: true });
    if (!isCluster(client)) throw new Error('expected a cluster client');
    closers.push(() => client.quit());
    const publisher = new RedisPublisher({ client, prefix });
    const subscriber = new RedisSubscriber({ client, prefix, scanIntervalMs: 50, clusterPollMs: 20 });
    closers.push(() => subscriber.close(0));
    const handled = new Set<string>();
    await subscriber.subscribe(
      { group: 'survivor', types: ['deployment:started'], concurrency: 4 },
      async (m) => {
        handled.add(m.fields.id!);
        return { kind: 'ack' };
      },
    );
    const key = streamKey(prefix, 'deployment:started');
    const { master, replica } = await servingPorts(cluster().ports[0]!, key);

    const before = await publisher.publishBatch(
      Array.from({ length: 30 }, (_, i) => ({
        type: 'deployment:started',
        data: { deploymentId: `a-${i}` },
      })),
    );
    await eventually(() => before.every((p) => handled.has(p.event.id)));
    // The replica has everything the master acknowledged (replication is asynchronous).
    await eventually(async () => {
      const [m, r] = await Promise.all([info(master, 'replication'), info(replica, 'replication')]);
      return r.master_link_status === 'up' && m.master_repl_offset === r.master_repl_offset;
    });
    const pid = Number((await info(master, 'server')).process_id);
    process.kill(pid, 'SIGKILL');

    const during: string[] = [];
    const started = Date.now();
    for (let i = 0; i < 30; i++) {
      const published = await publisher.publish({
        type: 'deployment:started',
        data: { deploymentId: `b-${i}` },
      });
      during.push(published.event.id);
    }
    const publishMs = Date.now() - started;

    await eventually(() => during.every((id) => handled.has(id)), 20_000);
    expect((await info(replica, 'replication')).role).toBe('master');
    expect(before.every((p) => handled.has(p.event.id))).toBe(true);
    await eventually(async () => Number(((await client.xpending(key, 'survivor')) as [number])[0]) === 0);
    expect(await client.xlen(key)).toBe(60);
    // Publishing waited for the failover rather than failing (node timeout 2 s + election).
    expect(publishMs).toBeGreaterThan(1000);
  }, 60_000);
});

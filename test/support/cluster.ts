/**
 * A throw-away Redis Cluster for a test file: three masters (and, if asked, replicas) on free
 * loopback ports, started with scripts/redis-cluster.sh in a temporary directory and stopped
 * (directory removed) after.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import calculateSlot from 'cluster-key-slot';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';

const run = promisify(execFile);
const SCRIPT = new URL('../../scripts/redis-cluster.sh', import.meta.url).pathname;
/** The cluster bus of a node listens on its port + 10000. */
const BUS_PORT_OFFSET = 10_000;

/** Shape of a test cluster. */
export interface TestClusterOptions {
  /** @defaultValue 3 */
  masters?: number;
  /** Replicas of each master. @defaultValue 0 */
  replicas?: number;
}

/** A running test cluster. */
export interface TestRedisCluster {
  /** Every node's port, masters and replicas. */
  ports: number[];
  /** Seed URLs, comma separated, as `MATERI_REDIS_URL` takes them with `MATERI_REDIS_CLUSTER=true`. */
  url: string;
  stop(): Promise<void>;
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Ports P that are free together with their cluster bus ports P + 10000. */
async function freeNodePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let attempt = 0; ports.length < count && attempt < 500; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 25_000);
    if (ports.includes(port) || ports.includes(port + BUS_PORT_OFFSET)) continue;
    if ((await canListen(port)) && (await canListen(port + BUS_PORT_OFFSET))) ports.push(port);
  }
  if (ports.length < count) throw new Error(`found only ${ports.length} of ${count} free port pairs`);
  return ports;
}

/** Starts a cluster on free ports (retrying when another process took a port meanwhile). */
export async function startRedisCluster(options: TestClusterOptions = {}): Promise<TestRedisCluster> {
  const { masters = 3, replicas = 0 } = options;
  let lastError: unknown;
  for (let attempt = 1; attempt <= 2; attempt++) {
    const dir = await mkdtemp(join(tmpdir(), 'materi-cluster-'));
    const ports = await freeNodePorts(masters * (replicas + 1));
    const env = { ...process.env, REDIS_CLUSTER_DIR: dir, REDIS_CLUSTER_REPLICAS: String(replicas) };
    const stop = async () => {
      await run('bash', [SCRIPT, 'stop', ...ports.map(String)], { env }).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    };
    try {
      await run('bash', [SCRIPT, 'start', ...ports.map(String)], { env, timeout: 45_000 });
      return { ports, url: ports.map((p) => `redis://127.0.0.1:${p}`).join(','), stop };
    } catch (error) {
      lastError = error;
      await stop();
    }
  }
  throw new Error(`could not start a Redis Cluster: ${(lastError as Error).message}`);
}

/**
 * Starts a cluster before the tests of the calling file and stops it after them. Returns a getter,
 * because the cluster exists only once `beforeAll` ran.
 */
export function redisClusterForFile(options: TestClusterOptions = {}): () => TestRedisCluster {
  let cluster: TestRedisCluster | undefined;
  beforeAll(async () => {
    cluster = await startRedisCluster(options);
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
  }, 30_000);
  return () => {
    if (!cluster) throw new Error('the Redis Cluster is not running (used outside a test?)');
    return cluster;
  };
}

/** Deletes every key under the prefix on every master of the cluster. */
export async function deleteClusterPrefix(client: Cluster, prefix: string): Promise<void> {
  for (const node of client.nodes('master')) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      // A node holds the keys of its own slots only; DEL per key keeps each command in one slot.
      for (const key of keys) await client.del(key);
    } while (cursor !== '0');
  }
}

/** Hash slot of a key (0-16383), for tests that need keys on different slots or nodes. */
export function slotOf(key: string): number {
  return calculateSlot(key);
}

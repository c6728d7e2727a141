import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { idempotency } from '../../src/bus/middleware/index.js';
import { createRedisClient } from '../../src/bus/redis/connection.js';
import { RedisIdempotencyStore } from '../../src/bus/redis/idempotency.js';
import { RedisPublisher } from '../../src/bus/redis/publisher.js';
import { RedisSubscriber } from '../../src/bus/redis/subscriber.js';
import { Router } from '../../src/bus/router.js';
import { deadLetterStreamKey } from '../../src/events/streams.js';
import { deletePrefix, eventually, TEST_REDIS_URL, testRedis, uniquePrefix } from '../support/redis.js';

const run = promisify(execFile);
let redis: Redis;
let prefix: string;
const children: ChildProcess[] = [];

beforeEach(() => {
  redis = testRedis();
  prefix = uniquePrefix('chaos');
});
afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  await deletePrefix(redis, prefix);
  await redis.quit();
});

function startConsumer(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/bus/fixtures/consumer.ts'], {
    env: { ...process.env, PREFIX: prefix, REDIS_URL: TEST_REDIS_URL, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve(child));
    child.on('exit', (code) => reject(new Error(`consumer exited early with ${code}`)));
  });
}

describe('Redis consumer groups under failure', () => {
  it('loses nothing when a consumer process is SIGKILLed mid-batch', async () => {
    const publisher = new RedisPublisher({ client: redis, prefix });
    const published = await publisher.publishBatch(
      Array.from({ length: 150 }, (_, i) => ({
        type: 'deployment:started',
        data: { deploymentId: `d-${i}` },
      })),
    );
    const victim = await startConsumer({ CONCURRENCY: '5', DELAY_MS: '15' });
    await eventually(async () => (await redis.hlen(`${prefix}:effects`)) >= 40);
    victim.kill('SIGKILL');
    await new Promise((r) => victim.once('exit', r));
    const pendingAtKill = Number(
      ((await redis.xpending(`${prefix}:deployment:started`, 'chaos')) as [number])[0],
    );
    await startConsumer({ CONCURRENCY: '5', DELAY_MS: '1' });
    await eventually(async () => (await redis.hlen(`${prefix}:effects`)) === 150, 20_000);
    const effects = await redis.hkeys(`${prefix}:effects`);
    expect(effects.sort()).toEqual(published.map((p) => p.event.id).sort());
    const executions = await redis.lrange(`${prefix}:executions`, 0, -1);
    // At least once: only the entries in flight at the kill may run twice.
    expect(executions.length - 150).toBeLessThanOrEqual(5);
    expect(pendingAtKill).toBeGreaterThan(0);
    await eventually(
      async () =>
        Number(((await redis.xpending(`${prefix}:deployment:started`, 'chaos')) as [number])[0]) === 0,
    );
    expect(await redis.xlen(deadLetterStreamKey(prefix, 'chaos'))).toBe(0);
  }, 40_000);

  it('reconnects and loses nothing when its Redis connections are killed mid-run', async () => {
    const marker = prefix.replace(/[^a-z0-9]/gi, '');
    const client = createRedisClient({ url: TEST_REDIS_URL, connectionName: `cmd-${marker}` });
    const handled = new Set<string>();
    const group = `kill-${marker}`;
    const router = new Router({
      subscriber: new RedisSubscriber({
        client,
        prefix,
        blockMs: 200,
        scanIntervalMs: 50,
        watchdogGraceMs: 1000,
      }),
      publisher: new RedisPublisher({ client, prefix }),
      middleware: [idempotency({ store: new RedisIdempotencyStore({ client, prefix }), leaseMs: 1000 })],
    });
    router.addHandler({
      name: 'killed',
      group,
      types: ['deployment:started'],
      concurrency: 4,
      claimIdleMs: 1000,
      backoff: { baseMs: 50, maxMs: 500 },
      handler: async (e) => {
        await new Promise((r) => setTimeout(r, 2));
        handled.add(e.id);
      },
    });
    await router.start();
    const publisher = new RedisPublisher({ client: redis, prefix });
    const ids: string[] = [];
    for (let round = 0; round < 5; round++) {
      const batch = await publisher.publishBatch(
        Array.from({ length: 40 }, (_, i) => ({
          type: 'deployment:started',
          data: { deploymentId: `r${round}-${i}` },
        })),
      );
      ids.push(...batch.map((p) => p.event.id));
      // Both connections are back (reconnected after the previous kill) before killing them again.
      const ours = await eventually(async () => {
        const ids = String(await redis.client('LIST'))
          .split('\n')
          .filter((line) => line.includes(`name=cmd-${marker}`) || line.includes(`name=materi:read:${group}`))
          .map((line) => /id=(\d+)/.exec(line)![1]!);
        return ids.length >= 2 ? ids : undefined;
      }, 10_000);
      for (const id of ours) await redis.client('KILL', 'ID', id);
      await new Promise((r) => setTimeout(r, 150));
    }
    await eventually(() => handled.size === ids.length, 20_000);
    expect([...handled].sort()).toEqual(ids.sort());
    await router.close(1000);
    await client.quit();
  }, 40_000);

  it('dead-letters an entry written by redis-cli that is not an event, and keeps running', async () => {
    const client = createRedisClient({ url: TEST_REDIS_URL });
    const handled: string[] = [];
    const router = new Router({
      subscriber: new RedisSubscriber({ client, prefix, blockMs: 200, scanIntervalMs: 50 }),
      publisher: new RedisPublisher({ client, prefix }),
    });
    router.addHandler({
      name: 'cli',
      group: 'cli',
      types: ['deployment:started'],
      handler: async (e) => void handled.push(e.id),
    });
    await router.start();
    const url = new URL(TEST_REDIS_URL);
    await run('redis-cli', [
      '-h',
      url.hostname,
      '-p',
      url.port || '6379',
      'XADD',
      `${prefix}:deployment:started`,
      '*',
      'hello',
      'world',
    ]);
    const good = await new RedisPublisher({ client: redis, prefix }).publish({
      type: 'deployment:started',
      data: { deploymentId: 'x' },
    });
    await eventually(() => handled.includes(good.event.id));
    const [letter] = await eventually(async () => {
      const entries = await redis.xrange(deadLetterStreamKey(prefix, 'cli'), '-', '+');
      return entries.length ? entries : undefined;
    });
    const fields = letter![1];
    expect(fields).toEqual(expect.arrayContaining(['reason', 'decode', 'attempts', '1']));
    expect(fields[fields.indexOf('error') + 1]).toBe('cannot decode event: field "id" is missing');
    expect(JSON.parse(fields[fields.indexOf('payload') + 1]!)).toEqual({ hello: 'world' });
    await router.close(500);
    await client.quit();
  });
});

import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.js';
import { deletePrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from '../support/redis.js';

let redis: Redis;
const prefix = uniquePrefix('cli');
const env = { MATERI_REDIS_URL: TEST_REDIS_URL, MATERI_STREAM_PREFIX: prefix };

beforeAll(() => {
  redis = testRedis();
});
afterAll(async () => {
  await deletePrefix(redis, prefix);
  await redis.quit();
});

describe('materi events', () => {
  it('publishes an event, prints its id and says which backend it uses', async () => {
    const result = await runCli(
      [
        'events',
        'publish',
        'deployment:started',
        '--data',
        '{"deploymentId":"d-1","version":"v2"}',
        '--correlation-id',
        'c-1',
      ],
      env,
    );
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('event bus redis');
    const id = result.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const [entry] = await redis.xrange(`${prefix}:deployment:started`, '-', '+');
    expect(entry![1]).toEqual(
      expect.arrayContaining(['id', id, 'correlation_id', 'c-1', 'deployment_id', 'd-1']),
    );
  });

  it('rejects data that does not match the schema with exit code 2 and the field name', async () => {
    const result = await runCli(
      ['events', 'publish', 'deployment:started', '--data', '{"deploymentId":"d","colour":"red"}'],
      env,
    );
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('"colour" is unknown');
  });

  it('rejects an unknown event type with exit code 2', async () => {
    const result = await runCli(['events', 'publish', 'deployment:exploded', '--data', '{}'], env);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown event type "deployment:exploded"');
  });

  it('tails events from the start as NDJSON, filtered by type and correlation id', async () => {
    await runCli(
      [
        'events',
        'publish',
        'deployment:stage:web:started',
        '--data',
        '{"deploymentId":"d-2","stage":"web"}',
        '--correlation-id',
        'c-2',
      ],
      env,
    );
    await runCli(
      [
        'events',
        'publish',
        'deployment:stage:web:started',
        '--data',
        '{"deploymentId":"d-3","stage":"web"}',
        '--correlation-id',
        'other',
      ],
      env,
    );
    const result = await runCli(
      [
        'events',
        'tail',
        '--from-start',
        '--json',
        '--type',
        'deployment:stage:*:started',
        '--correlation-id',
        'c-2',
        '--limit',
        '1',
      ],
      env,
    );
    expect(result.code).toBe(0);
    const lines = result.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      type: 'deployment:stage:web:started',
      correlation_id: 'c-2',
      data: { stage: 'web' },
    });
  });

  it('fails clearly when Redis cannot be reached', async () => {
    const result = await runCli(['events', 'publish', 'deployment:started', '--data', '{}'], {
      ...env,
      MATERI_REDIS_URL: 'redis://127.0.0.1:1',
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
  });

  it('rejects a malformed setting naming the variable', async () => {
    const result = await runCli(['events', 'publish', 'deployment:started', '--data', '{}'], {
      ...env,
      MATERI_REDIS_URL: 'http://x',
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('MATERI_REDIS_URL: must start with redis://');
  });
});

import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { registerEventsCommands } from '../../src/cli/events.js';
import { runMateri } from '../support/materi-cli.js';
import { deletePrefix, TEST_REDIS_URL, testRedis, uniquePrefix } from '../support/redis.js';

let redis: Redis;
let prefix: string;

beforeAll(() => {
  redis = testRedis();
});
afterAll(async () => {
  await redis.quit();
});
beforeEach(() => {
  prefix = uniquePrefix('cli');
  vi.stubEnv('MATERI_REDIS_URL', TEST_REDIS_URL);
  vi.stubEnv('MATERI_STREAM_PREFIX', prefix);
  vi.stubEnv('MATERI_LOG_LEVEL', 'warn');
  vi.stubEnv('MATERI_QUIET', '');
});
afterEach(async () => {
  vi.unstubAllEnvs();
  await deletePrefix(redis, prefix);
});

/** `materi events <args>`, in this process. */
function events(...args: string[]) {
  return runMateri([registerEventsCommands], ['events', ...args]);
}

/** Every key under the test's prefix: what a command wrote. */
async function keys(): Promise<string[]> {
  return redis.keys(`${prefix}:*`);
}

describe('materi events publish', () => {
  it('publishes an event, prints its id and says which backend it uses', async () => {
    const result = await events(
      'publish',
      'deployment:started',
      '--data',
      '{"deploymentId":"d-1","version":"v2","environment":"production"}',
      '--correlation-id',
      'c-1',
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
    const result = await events(
      'publish',
      'deployment:started',
      '--data',
      '{"deploymentId":"d","version":"v1","environment":"e","colour":"red"}',
    );
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('"colour" is unknown');
  });

  it('rejects an unknown event type with exit code 2', async () => {
    const result = await events('publish', 'deployment:exploded', '--data', '{}');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown event type "deployment:exploded"');
  });

  describe('when a required field is missing', () => {
    it.each([
      ['deployment:started', '{}', 'deploymentId'],
      ['deployment:started', '{"deploymentId":"d-1","environment":"production"}', 'version'],
      ['deployment:started', '{"deploymentId":"d-1","version":"v2"}', 'environment'],
      ['deployment:started', '{"deploymentId":"d-1","version":"","environment":"production"}', 'version'],
      ['deployment:completed', '{"deploymentId":"d-1"}', 'status'],
      ['deployment:completed', '{"deploymentId":"d-1","status":"DEPLOYMENT_STATUS_UNSPECIFIED"}', 'status'],
      ['deployment:failed', '{"deploymentId":"d-1"}', 'reason'],
      ['deployment:stage:web:started', '{"deploymentId":"d-1"}', 'stage'],
      ['deployment:stage:web:completed', '{"deploymentId":"d-1","stage":"web"}', 'status'],
      ['validation:started', '{"version":"v1"}', 'deploymentId'],
      ['rollback:completed', '{"deploymentId":"d-1"}', 'status'],
      ['notification:sent', '{"deploymentId":"d-1","channel":"slack"}', 'notifiedEventId'],
      ['alert:raised', '{"group":"g"}', 'alert'],
    ])('%s with %s: exit 2 naming "%s", nothing written', async (type, data, field) => {
      const result = await events('publish', type, '--data', data);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe(`materi: invalid data for event "${type}": "${field}" is required\n`);
      expect(await keys()).toEqual([]);
    });

    it('accepts the same type once the fields are there', async () => {
      const result = await events(
        'publish',
        'deployment:stage:web:completed',
        '--data',
        '{"deploymentId":"d-1","stage":"web","status":"DEPLOYMENT_STATUS_SUCCESS"}',
      );
      expect(result.code).toBe(0);
      expect(await redis.xlen(`${prefix}:deployment:stage:web:completed`)).toBe(1);
    });
  });

  it('fails clearly when Redis cannot be reached', async () => {
    vi.stubEnv('MATERI_REDIS_URL', 'redis://127.0.0.1:1');
    const result = await events(
      'publish',
      'deployment:started',
      '--data',
      '{"deploymentId":"d-1","version":"v2","environment":"production"}',
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
  });

  it('rejects a malformed setting naming the variable', async () => {
    vi.stubEnv('MATERI_REDIS_URL', 'http://x');
    const result = await events(
      'publish',
      'deployment:started',
      '--data',
      '{"deploymentId":"d-1","version":"v2","environment":"production"}',
    );
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('MATERI_REDIS_URL: must start with redis://');
  });
});

describe('materi events tail', () => {
  it('tails events from the start as NDJSON, filtered by type and correlation id', async () => {
    for (const [deployment, correlation] of [
      ['d-2', 'c-2'],
      ['d-3', 'other'],
    ]) {
      const published = await events(
        'publish',
        'deployment:stage:web:started',
        '--data',
        `{"deploymentId":"${deployment}","stage":"web"}`,
        '--correlation-id',
        correlation!,
      );
      expect(published.code).toBe(0);
    }
    const result = await events(
      'tail',
      '--from-start',
      '--json',
      '--type',
      'deployment:stage:*:started',
      '--correlation-id',
      'c-2',
      '--limit',
      '1',
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

  describe('when --type names nothing that is ever published', () => {
    it.each([
      'deployment:exploded',
      'deploy:*',
      'deployment:stage:Web:started',
      'deployment:stage:*:finished',
      'deployment:**',
    ])(
      'refuses %s at once with exit 2 and a one-line error naming it',
      async (type) => {
        const result = await events('tail', '--type', 'deployment:started', '--type', type, '--limit', '1');
        expect(result.code).toBe(2);
        expect(result.stdout).toBe('');
        const lines = result.stderr.trim().split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toContain(`--type: unknown event type or pattern "${type}"`);
        expect(lines[0]).toContain('deployment:stage:<stage>:started|completed');
      },
      10_000,
    );

    it('accepts stage types and patterns that match some type', async () => {
      const published = await events('publish', 'rollback:initiated', '--data', '{"deploymentId":"d-4"}');
      expect(published.code).toBe(0);
      const result = await events(
        'tail',
        '--from-start',
        '--json',
        '--limit',
        '1',
        ...[
          'deployment:stage:*:completed',
          'deployment:stage:web:started',
          '*:*:*:*',
          'rollback:*',
          '**',
        ].flatMap((t) => ['--type', t]),
      );
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ type: 'rollback:initiated', deployment_id: 'd-4' });
    });
  });
});

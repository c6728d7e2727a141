import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type EventBus, openEventBus } from '../../../src/bus/open.js';
import { Router } from '../../../src/bus/router.js';
import type { OutgoingEvent } from '../../../src/bus/types.js';
import { DeploymentStatus } from '../../../src/events/index.js';
import { loadSettings } from '../../../src/runtime/config.js';
import { silentLogger } from '../../../src/runtime/logging.js';
import { startStack } from '../../../src/runtime/stack.js';
import {
  createMemoryNotifierState,
  createNotifier,
  NOTIFIER_GROUP,
  notifierRegistration,
  parseNotifierSettings,
} from '../../../src/workers/notifier/index.js';
import { deletePrefix, eventually, TEST_REDIS_URL, testRedis, uniquePrefix } from '../../support/redis.js';
import { type FakeProvider, startWebhookReceiver } from './support/providers.js';

let hook: FakeProvider;
beforeAll(async () => {
  hook = await startWebhookReceiver();
});
afterAll(async () => {
  await hook.close();
});

const started = (deploymentId: string): OutgoingEvent => ({
  type: 'deployment:started',
  data: { deploymentId, version: 'v1', environment: 'production', project: 'shop' },
});
const stageCompleted = (deploymentId: string, stage: string): OutgoingEvent => ({
  type: `deployment:stage:${stage}:completed`,
  data: { deploymentId, stage, status: DeploymentStatus.SUCCESS },
});
const failed = (deploymentId: string): OutgoingEvent => ({
  type: 'deployment:failed',
  data: { deploymentId, reason: 'stage api failed', environment: 'production' },
});

describe.each([
  ['Redis', true],
  ['embedded', false],
])('the notifier on %s', (_, onRedis) => {
  let dir: string;
  let prefix: string;
  let bus: EventBus;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeEach(async () => {
    hook.requests.length = 0;
    dir = mkdtempSync(join(tmpdir(), 'materi-notifier-start-'));
    prefix = uniquePrefix('notifier-start');
    const env = {
      ...process.env,
      MATERI_REDIS_URL: onRedis ? TEST_REDIS_URL : '',
      MATERI_STREAM_PREFIX: prefix,
      MATERI_DATA_DIR: dir,
    };
    bus = await openEventBus(loadSettings(env), {
      logger: silentLogger(),
      source: 'test/orchestrator',
      subscriber: { blockMs: 100, scanIntervalMs: 50, discoveryIntervalMs: 100 },
    });
  });

  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
    await bus.close();
    const redis = testRedis();
    await deletePrefix(redis, prefix);
    await redis.quit();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Starts a notifier process: its settings (with `extra`), a router, the `printery-notifier` group. */
  async function startNotifier(extra: Record<string, unknown> = {}) {
    const settings = parseNotifierSettings({
      channels: { audit: { type: 'webhook', url: `${hook.url}/audit` } },
      routes: [{ events: ['deployment:*', 'deployment:stage:*:completed'], channels: ['audit'] }],
      ...extra,
    });
    const notifier = createNotifier({ settings, state: createMemoryNotifierState() });
    const router = new Router({ subscriber: bus.subscriber, publisher: bus.publisher });
    router.addHandler(notifierRegistration(notifier, { claimIdleMs: 2000 }));
    await router.start();
    cleanups.push(() => router.close(500));
    return router;
  }

  /** `<type> <deployment id>` of every event the webhook was told about, in arrival order. */
  const notified = () =>
    hook.requests.map((r) => {
      const body = r.json as { type: string; deployment_id: string };
      return `${body.type} ${body.deployment_id}`;
    });

  it('does not announce what was published before its first start, but everything after', async () => {
    await bus.publisher.publishBatch([started('old'), stageCompleted('old', 'api'), failed('old')]);

    await startNotifier();
    // Same streams as before, plus a stage stream that appears only now: read from its beginning.
    await bus.publisher.publishBatch([started('new'), stageCompleted('new', 'api')]);
    await bus.publisher.publish(stageCompleted('new', 'web'));
    await bus.publisher.publish(failed('new'));

    const expected = [
      'deployment:started new',
      'deployment:stage:api:completed new',
      'deployment:stage:web:completed new',
      'deployment:failed new',
    ];
    await eventually(() => notified().length >= expected.length);
    // Stream order: an old entry would have come before the new one of its stream.
    expect(notified().sort()).toEqual([...expected].sort());
    expect(notified().join('\n')).not.toContain(' old');
  });

  it('as `materi worker notifier` (the stack), does not announce the events of before its first start', async () => {
    await bus.publisher.publishBatch([started('old'), failed('old')]);
    const config = join(dir, 'notifier.yaml');
    writeFileSync(
      config,
      [
        'channels:',
        `  audit: { type: webhook, url: "${hook.url}/audit" }`,
        'routes:',
        '  - { events: ["deployment:*"], channels: [audit] }',
        '',
      ].join('\n'),
    );
    const stack = await startStack({
      settings: loadSettings({
        ...process.env,
        MATERI_REDIS_URL: onRedis ? TEST_REDIS_URL : '',
        MATERI_STREAM_PREFIX: prefix,
        MATERI_DATA_DIR: dir,
        MATERI_NOTIFIER_CONFIG: config,
      }),
      logger: silentLogger(),
      role: 'test',
      components: ['notifier'],
      subscriber: { blockMs: 100, scanIntervalMs: 50, discoveryIntervalMs: 100 },
      claimIdleMs: 2000,
    });
    cleanups.push(() => stack.close());
    await bus.publisher.publish(started('new'));
    await eventually(() => notified().length >= 1);
    expect(notified()).toEqual(['deployment:started new']);
  });

  it('keeps its place on a restart: what was published while it was down is announced then', async () => {
    await bus.publisher.publish(failed('old'));
    const first = await startNotifier();
    await bus.publisher.publish(started('before-restart'));
    await eventually(() => notified().length === 1);
    await first.close(500);

    await bus.publisher.publishBatch([failed('while-down'), started('while-down')]);
    await startNotifier();
    await eventually(() => notified().length === 3);
    expect(notified().slice(1).sort()).toEqual([
      'deployment:failed while-down',
      'deployment:started while-down',
    ]);
    expect(notified()[0]).toBe('deployment:started before-restart');
  });

  it('announces, after a restart, a stream that first appeared while it was down', async () => {
    const first = await startNotifier();
    await bus.publisher.publish(started('before-restart'));
    await eventually(() => notified().length === 1);
    await first.close(500);

    await bus.publisher.publish(failed('while-down'));
    await startNotifier();
    await eventually(() => notified().includes('deployment:failed while-down'), 3000);
  });

  it('announces the history too when its settings say startFrom: beginning', async () => {
    await bus.publisher.publishBatch([started('old'), failed('old')]);
    await startNotifier({ startFrom: 'beginning' });
    await eventually(() => notified().length >= 2);
    expect(notified().sort()).toEqual(['deployment:failed old', 'deployment:started old']);
  });

  it('is registered as the printery-notifier group, 5 at once, from its settings’ startFrom', async () => {
    const notifier = createNotifier({
      settings: parseNotifierSettings({
        channels: { audit: { type: 'webhook', url: `${hook.url}/audit` } },
        routes: [{ events: ['rollback:*'], channels: ['audit'] }],
      }),
      state: createMemoryNotifierState(),
    });
    expect(notifier.startFrom).toBe('latest');
    expect(notifierRegistration(notifier, { concurrency: 2, claimIdleMs: undefined })).toMatchObject({
      name: 'notifier',
      group: NOTIFIER_GROUP,
      types: ['deployment:started', 'deployment:completed', 'rollback:*'],
      concurrency: 2,
      startFrom: 'latest',
    });
    expect(notifierRegistration(notifier).concurrency).toBe(5);
  });
});

describe('the notifier setting startFrom', () => {
  it('is latest by default, takes beginning, and refuses anything else naming the key', () => {
    const base = {
      channels: { audit: { type: 'webhook', url: 'http://127.0.0.1:9/audit' } },
      routes: [{ events: ['deployment:failed'], channels: ['audit'] }],
    };
    expect(parseNotifierSettings(base).startFrom).toBe('latest');
    expect(parseNotifierSettings({ ...base, startFrom: 'beginning' }).startFrom).toBe('beginning');
    expect(() => parseNotifierSettings({ ...base, startFrom: 'oldest' }, 'notifier.yaml')).toThrow(
      /^notifier\.yaml: startFrom: .*"latest"\|"beginning"/,
    );
  });
});

import { spawn } from 'node:child_process';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type EventBus, openEventBus } from '../../src/bus/open.js';
import { Router } from '../../src/bus/router.js';
import { registerDlqCommands } from '../../src/cli/dlq.js';
import { BusAlertMonitor, DEAD_LETTER_RECORDER_GROUP, startDeadLetterRecorder } from '../../src/dlq/index.js';
import { UnrecoverableError } from '../../src/errors/index.js';
import { loadSettings } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/runtime/logging.js';
import { FailedEventStore, openStore, SQLITE_FILE_NAME, type Store } from '../../src/store/index.js';
import { BACKENDS, type TestDatabase } from '../store/backends.js';
import { runCli } from '../support/cli.js';
import { runMateri } from '../support/materi-cli.js';
import { deletePrefix, eventually, TEST_REDIS_URL, testRedis, uniquePrefix } from '../support/redis.js';

const logger = silentLogger();

describe.each(BACKENDS)('dead-letter records on $dialect', (backend) => {
  let database: TestDatabase;
  let prefix: string;
  let env: Record<string, string>;
  let bus: EventBus;
  let store: Store;
  let failedEvents: FailedEventStore;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeEach(async () => {
    database = await backend.create();
    prefix = uniquePrefix('dlq');
    env = {
      MATERI_REDIS_URL: TEST_REDIS_URL,
      MATERI_STREAM_PREFIX: prefix,
      MATERI_DATA_DIR: database.dataDir,
      ...(database.databaseUrl ? { MATERI_DATABASE_URL: database.databaseUrl } : {}),
    };
    const settings = loadSettings({ ...process.env, ...env });
    bus = await openEventBus(settings, {
      logger,
      source: 'test',
      subscriber: { blockMs: 100, scanIntervalMs: 50, discoveryIntervalMs: 100 },
    });
    store = await openStore({ databaseUrl: settings.databaseUrl, dataDir: settings.dataDir, logger });
    failedEvents = new FailedEventStore(store.db);
  });

  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
    const redis = testRedis();
    await deletePrefix(redis, prefix);
    await redis.quit();
    await bus.close();
    await store.close();
    await database.drop();
  });

  async function routeValidation(fragile: { broken: boolean; handled: string[] }, steady: string[]) {
    const router = new Router({ subscriber: bus.subscriber, publisher: bus.publisher });
    const common = {
      types: ['validation:started'],
      claimIdleMs: 2000,
      maxDeliveries: 2,
      backoff: { baseMs: 50, jitter: 0 },
    };
    router.addHandler({
      ...common,
      name: 'fragile',
      group: 'fragile',
      handler: async (e) => {
        if (fragile.broken) throw new Error('registry unreachable: connect ECONNREFUSED');
        fragile.handled.push(e.id);
      },
    });
    router.addHandler({
      ...common,
      name: 'steady',
      group: 'steady',
      handler: async (e) => void steady.push(e.id),
    });
    await router.start();
    cleanups.push(() => router.close(500));
  }

  it('lists dead-lettered events, replays them to their group only once fixed, and purges them', async () => {
    const fragile = { broken: true, handled: [] as string[] };
    const steady: string[] = [];
    await routeValidation(fragile, steady);
    const recorder = await startDeadLetterRecorder({
      subscriber: bus.subscriber,
      failedEvents,
      logger,
      claimIdleMs: 2000,
    });
    cleanups.push(() => recorder.close(0));

    const { event } = await bus.publisher.publish({
      type: 'validation:started',
      data: { deploymentId: 'dep-1', version: 'v2' },
    });
    await eventually(async () => (await failedEvents.list({ group: 'fragile' })).length === 1);

    const list = await runCli(['dlq', 'list', '--json'], env);
    expect(list.code).toBe(0);
    const [row] = JSON.parse(list.stdout);
    expect(row).toMatchObject({
      group: 'fragile',
      eventId: event.id,
      eventType: 'validation:started',
      attempts: 2,
      status: 'dead',
      error: 'registry unreachable: connect ECONNREFUSED',
      deploymentId: 'dep-1',
      sourceStream: `${prefix}:validation:started`,
    });
    const table = await runCli(['dlq', 'list', '--group', 'fragile'], env);
    expect(table.stdout).toContain(row.id);
    const show = await runCli(['dlq', 'show', row.id], env);
    expect(show.stdout).toContain('error:          registry unreachable');
    expect(show.stdout).toContain(`"id": "${event.id}"`);
    expect(steady).toEqual([event.id]);

    fragile.broken = false;
    const replay = await runCli(['dlq', 'replay', row.id], env);
    expect(replay.code).toBe(0);
    expect(replay.stdout).toContain(`replayed ${row.id} to fragile`);
    await eventually(() => fragile.handled.length === 1);
    await new Promise((r) => setTimeout(r, 400));
    expect(fragile.handled).toEqual([event.id]);
    expect(steady).toEqual([event.id]);
    expect((await failedEvents.get(row.id))?.status).toBe('replayed');

    // A replay that fails again comes back to the dead-letter queue.
    fragile.broken = true;
    expect((await runCli(['dlq', 'replay', '--all', '--group', 'fragile'], env)).stdout).toContain(
      'nothing to replay',
    );
    await runCli(['dlq', 'replay', row.id], env);
    await eventually(async () => (await failedEvents.get(row.id))?.status === 'dead');
    expect((await failedEvents.get(row.id))?.replayCount).toBe(2);

    const purge = await runCli(['dlq', 'purge', '--older-than', '0s'], env);
    expect(purge.stdout).toContain('purged 1 event(s)');
    expect(JSON.parse((await runCli(['dlq', 'list', '--json'], env)).stdout)).toEqual([]);
  }, 60_000);

  it('rejects bad input to the dlq commands with exit code 2 or a clear not-found', async () => {
    const missing = await runCli(['dlq', 'show', 'abcdefabcdef'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no failed event with id abcdefabcdef');
    const bad = await runCli(['dlq', 'purge', '--older-than', 'forever'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--older-than: expected a duration');
    expect((await runCli(['dlq', 'replay'], env)).code).toBe(2);
  });

  describe('when dlq replay --all replays', () => {
    /** A dead letter of `group` first dead-lettered at `failedAt`, of the source entry `entryId`. */
    function deadLetter(group: string, failedAt: number, entryId: string, n: number) {
      return {
        dlqEntryId: `${failedAt}-${n}`,
        sourceStream: `${prefix}:validation:started`,
        entryId,
        eventId: `event-${n}`,
        eventType: 'validation:started',
        group,
        consumer: `${group}:host:1:0`,
        attempts: 5,
        error: 'boom',
        stack: '',
        fields: { id: `event-${n}`, type: 'validation:started', n: String(n) },
        correlationId: '',
        deploymentId: `dep-${n}`,
        firstFailedAt: new Date(failedAt),
        lastFailedAt: new Date(failedAt),
      };
    }

    async function replayAll(args: string[] = []) {
      for (const [name, value] of Object.entries({ ...env, MATERI_QUIET: '1' })) vi.stubEnv(name, value);
      try {
        return await runMateri([registerDlqCommands], ['dlq', 'replay', '--all', '--json', ...args]);
      } finally {
        vi.unstubAllEnvs();
      }
    }

    it('replays oldest first: by dead-letter time, then by original entry order', async () => {
      const base = Date.parse('2026-01-01T00:00:00Z');
      // Recorded out of order; two failed in the same millisecond (order decided by the entry ids).
      const recorded = [
        await failedEvents.record(deadLetter('fragile', base + 2000, `${base - 10}-0`, 3)),
        await failedEvents.record(deadLetter('fragile', base, `${base - 30}-0`, 1)),
        await failedEvents.record(deadLetter('fragile', base + 5000, `${base - 20}-1`, 5)),
        await failedEvents.record(deadLetter('fragile', base + 2000, `${base - 20}-0`, 2)),
        await failedEvents.record(deadLetter('other', base + 1000, `${base - 25}-0`, 4)),
      ];
      const idOf = (n: number) => recorded.find((r) => r.eventId === `event-${n}`)!.id;

      const result = await replayAll(['--group', 'fragile']);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout).map((r: { id: string }) => r.id)).toEqual([1, 2, 3, 5].map(idOf));
      const redis = testRedis();
      cleanups.push(() => redis.quit());
      const replayed = await redis.xrange(`${prefix}:replay:fragile`, '-', '+');
      expect(replayed.map(([, fields]) => fields[fields.indexOf('n') + 1])).toEqual(['1', '2', '3', '5']);

      const rest = await replayAll();
      expect(JSON.parse(rest.stdout).map((r: { id: string }) => r.id)).toEqual([idOf(4)]);
    });

    it('replays every dead row, oldest first, past the 1000 rows one listing returns', async () => {
      const base = Date.parse('2026-01-01T00:00:00Z');
      const count = 1003;
      // The 3 oldest share one millisecond with others, at the edge of the first page (newest first).
      const times = Array.from({ length: count }, (_, i) => base + Math.max(0, i - 5));
      for (const [i, at] of times.entries())
        await failedEvents.record(deadLetter('fragile', at, `${base - count + i}-0`, i));

      const result = await replayAll();
      expect(result.code).toBe(0);
      const ids = JSON.parse(result.stdout).map((r: { id: string }) => r.id);
      expect(ids).toHaveLength(count);
      expect(new Set(ids).size).toBe(count);
      expect(await failedEvents.list({ status: 'dead' })).toEqual([]);
      const redis = testRedis();
      cleanups.push(() => redis.quit());
      const replayed = await redis.xrange(`${prefix}:replay:fragile`, '-', '+');
      expect(replayed.map(([, fields]) => Number(fields[fields.indexOf('n') + 1]))).toEqual(
        Array.from({ length: count }, (_, i) => i),
      );
    }, 60_000);
  });

  it('still records an entry when the recorder is killed between the dead-letter write and the row insert', async () => {
    const redis = testRedis();
    cleanups.push(() => redis.quit());
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/dlq/fixtures/recorder.ts'], {
      env: { ...process.env, ...env, MATERI_LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanups.push(async () => child.exitCode === null && child.kill('SIGKILL'));
    await new Promise<void>((resolve) =>
      child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()),
    );

    // Hold the table so the recorder's insert blocks, dead-letter an event, kill the recorder mid-insert.
    const release = await lockFailedEvents(database);
    const router = new Router({ subscriber: bus.subscriber, publisher: bus.publisher });
    router.addHandler({
      name: 'hopeless',
      group: 'hopeless',
      types: ['deployment:started'],
      handler: async () => {
        throw new UnrecoverableError('bad plan');
      },
    });
    await router.start();
    cleanups.push(() => router.close(500));
    await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: 'dep-k' } });
    await eventually(async () => {
      try {
        const [pending] = (await redis.xpending(`${prefix}:dlq:hopeless`, DEAD_LETTER_RECORDER_GROUP)) as [
          number,
        ];
        return Number(pending) === 1;
      } catch {
        return false;
      }
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    await release();

    const recorder = await startDeadLetterRecorder({
      subscriber: bus.subscriber,
      failedEvents,
      logger,
      claimIdleMs: 500,
    });
    cleanups.push(() => recorder.close(0));
    await eventually(async () => {
      const [pending] = (await redis.xpending(`${prefix}:dlq:hopeless`, DEAD_LETTER_RECORDER_GROUP)) as [
        number,
      ];
      return Number(pending) === 0;
    }, 15_000);
    const rows = await failedEvents.list({ group: 'hopeless' });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      group: 'hopeless',
      attempts: 1,
      error: 'bad plan',
      deploymentId: 'dep-k',
    });
  }, 40_000);

  it('raises a dead-letter alert once per crossing and resolves it when the queue is purged', async () => {
    const router = new Router({ subscriber: bus.subscriber, publisher: bus.publisher });
    router.addHandler({
      name: 'alerting',
      group: 'alerting',
      types: ['deployment:started'],
      handler: async () => {
        throw new UnrecoverableError('nope');
      },
    });
    await router.start();
    cleanups.push(() => router.close(500));
    const recorder = await startDeadLetterRecorder({ subscriber: bus.subscriber, failedEvents, logger });
    cleanups.push(() => recorder.close(0));
    await bus.publisher.publishBatch([
      { type: 'deployment:started', data: { deploymentId: 'a' } },
      { type: 'deployment:started', data: { deploymentId: 'b' } },
    ]);
    await eventually(async () => (await failedEvents.list({ group: 'alerting' })).length === 2);
    const monitor = new BusAlertMonitor({
      inspector: bus.inspector,
      deadLetterDepth: () => failedEvents.depth(),
      db: store.db,
      publisher: bus.publisher,
      logger,
      thresholds: { deadLetterDepth: 1 },
    });
    const second = new BusAlertMonitor({ ...monitorOptions(monitor) });
    expect(await monitor.check()).toEqual([
      { alert: 'DeadLetterQueueDepth', group: 'alerting', resolved: false },
    ]);
    expect(await monitor.check()).toEqual([]);
    expect(await second.check()).toEqual([]);
    await failedEvents.purge({ group: 'alerting' });
    expect(await second.check()).toEqual([
      { alert: 'DeadLetterQueueDepth', group: 'alerting', resolved: true },
    ]);
    const redis = testRedis();
    const alerts = await redis.xrange(`${prefix}:alert:raised`, '-', '+');
    await redis.quit();
    expect(alerts).toHaveLength(2);
    expect(alerts[0]![1]).toEqual(expect.arrayContaining(['priority', 'CRITICAL']));
  });

  function monitorOptions(monitor: BusAlertMonitor) {
    return (monitor as unknown as { options: ConstructorParameters<typeof BusAlertMonitor>[0] }).options;
  }
});

/** Blocks writes to failed_events until the returned function is called. */
async function lockFailedEvents(database: TestDatabase): Promise<() => Promise<void>> {
  if (database.databaseUrl) {
    const client = new pg.Client({ connectionString: database.databaseUrl });
    await client.connect();
    await client.query('BEGIN');
    await client.query('LOCK TABLE failed_events IN ACCESS EXCLUSIVE MODE');
    return async () => {
      await client.query('ROLLBACK');
      await client.end();
    };
  }
  const db = new Database(`${database.dataDir}/${SQLITE_FILE_NAME}`);
  db.exec('BEGIN IMMEDIATE');
  return async () => {
    db.exec('ROLLBACK');
    db.close();
  };
}

import { mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startHeartbeat } from '../../src/bus/heartbeat.js';
import { type EventBus, openEventBus } from '../../src/bus/open.js';
import { RedisInspector } from '../../src/bus/redis/inspector.js';
import { RedisSubscriber } from '../../src/bus/redis/subscriber.js';
import { SqliteInspector } from '../../src/bus/sqlite/index.js';
import type { BusInspector, GroupStatus, Subscriber } from '../../src/bus/types.js';
import { registerWorkersCommand } from '../../src/cli/workers.js';
import { loadSettings } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/runtime/logging.js';
import { runMateri } from '../support/materi-cli.js';
import { deletePrefix, eventually, TEST_REDIS_URL, testRedis, uniquePrefix } from '../support/redis.js';

/** Each backend: how to open it, a subscriber whose consumers claim another host, and an inspector that forgets fast. */
const BACKENDS = [
  {
    name: 'Redis',
    env: (prefix: string, dir: string) => ({
      MATERI_REDIS_URL: TEST_REDIS_URL,
      MATERI_STREAM_PREFIX: prefix,
      MATERI_DATA_DIR: dir,
    }),
    subscriberOn: (bus: EventBus, host: string): Subscriber =>
      new RedisSubscriber({ client: bus.redis!, prefix: bus.prefix, hostname: host, blockMs: 100 }),
    inspector: (bus: EventBus, forgetDeadConsumersAfterMs: number): BusInspector =>
      new RedisInspector({ client: bus.redis!, prefix: bus.prefix, forgetDeadConsumersAfterMs }),
    consumersInBackend: async (bus: EventBus, group: string, type: string) =>
      ((await bus.redis!.xinfo('CONSUMERS', `${bus.prefix}:${type}`, group)) as string[][]).map((c) => c[1]),
  },
  {
    name: 'embedded',
    env: (prefix: string, dir: string) => ({ MATERI_STREAM_PREFIX: prefix, MATERI_DATA_DIR: dir }),
    subscriberOn: (bus: EventBus, host: string): Subscriber =>
      bus.embedded!.subscriber({ hostname: host, scanIntervalMs: 50 }),
    inspector: (bus: EventBus, forgetDeadConsumersAfterMs: number): BusInspector =>
      new SqliteInspector({
        database: bus.embedded!.database,
        prefix: bus.prefix,
        forgetDeadConsumersAfterMs,
      }),
    consumersInBackend: async (bus: EventBus, group: string) =>
      (
        bus
          .embedded!.database.statement('SELECT consumer FROM bus_consumers WHERE group_name = ?')
          .all(group) as { consumer: string }[]
      ).map((r) => r.consumer),
  },
];

describe.each(BACKENDS)('materi workers on $name', (backend) => {
  let dir: string;
  let prefix: string;
  let env: Record<string, string>;
  let bus: EventBus;
  const cleanups: (() => Promise<unknown>)[] = [];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'materi-workers-'));
    prefix = uniquePrefix('workers');
    env = backend.env(prefix, dir);
    bus = await openEventBus(loadSettings({ ...process.env, MATERI_REDIS_URL: '', ...env }), {
      logger: silentLogger(),
      source: 'test',
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

  async function workers(...args: string[]) {
    for (const [name, value] of Object.entries({ MATERI_REDIS_URL: '', ...env, MATERI_QUIET: '1' }))
      vi.stubEnv(name, value);
    try {
      return await runMateri([registerWorkersCommand], ['workers', ...args]);
    } finally {
      vi.unstubAllEnvs();
    }
  }

  const groupOf = (groups: GroupStatus[], name: string) => groups.find((g) => g.group === name);

  it('shows a consumer as soon as its process starts, before its first message', async () => {
    const subscription = await bus.subscriber.subscribe(
      { group: 'fresh-group', types: ['validation:started'] },
      async () => ({ kind: 'ack' }),
    );
    cleanups.push(() => subscription.close(0));
    const stopBeating = startHeartbeat(bus.inspector, { role: 'worker test', groups: () => ['fresh-group'] });
    cleanups.push(stopBeating);

    const name = `fresh-group:${hostname()}:${process.pid}:0`;
    const report = await eventually(async () => {
      const result = await workers('--json');
      expect(result.code).toBe(0);
      const parsed = JSON.parse(result.stdout) as { groups: GroupStatus[] };
      return groupOf(parsed.groups, 'fresh-group')?.consumers.length ? parsed : undefined;
    });
    expect(groupOf(report.groups, 'fresh-group')!.consumers).toEqual([
      expect.objectContaining({ name, state: 'alive', pending: 0, host: hostname(), pid: process.pid }),
    ]);
    const text = await workers();
    expect(text.stdout).toMatch(new RegExp(`^fresh-group  lag 0  pending 0 .*\\n  ALIVE  ${name}  `, 'm'));
  });

  it('forgets a dead consumer with nothing pending after the threshold, and keeps one holding entries', async () => {
    // Two consumers of processes that are gone (no heartbeat): one handled its event, one still holds one.
    const gone = await backend
      .subscriberOn(bus, 'gone-host')
      .subscribe({ group: 'done-group', types: ['validation:started'] }, async () => ({ kind: 'ack' }));
    const stuck = await backend
      .subscriberOn(bus, 'stuck-host')
      .subscribe({ group: 'stuck-group', types: ['validation:started'] }, () => new Promise(() => {}));
    await bus.publisher.publish({ type: 'validation:started', data: { deploymentId: 'd-1' } });
    const patient = backend.inspector(bus, 3_600_000);
    const eager = backend.inspector(bus, 300);
    await eventually(async () => {
      const groups = await patient.groups();
      return (
        groupOf(groups, 'done-group')?.consumers.length === 1 && groupOf(groups, 'stuck-group')?.pending === 1
      );
    });
    await gone.close(0);
    await stuck.close(0);
    const goneName = `done-group:gone-host:${process.pid}:0`;
    const stuckName = `stuck-group:stuck-host:${process.pid}:0`;

    // Dead, but not for as long as the threshold: still shown.
    expect(groupOf(await patient.groups(), 'done-group')!.consumers).toEqual([
      expect.objectContaining({ name: goneName, state: 'dead', pending: 0 }),
    ]);

    await eventually(async () => groupOf(await eager.groups(), 'done-group')!.consumers.length === 0);
    expect(await backend.consumersInBackend(bus, 'done-group', 'validation:started')).toEqual([]);
    const late = await eager.groups();
    expect(groupOf(late, 'stuck-group')!.consumers).toEqual([
      expect.objectContaining({ name: stuckName, state: 'dead', pending: 1 }),
    ]);
    expect(await backend.consumersInBackend(bus, 'stuck-group', 'validation:started')).toContain(stuckName);
  });
});

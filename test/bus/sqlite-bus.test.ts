import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { idempotency } from '../../src/bus/middleware/index.js';
import { Router } from '../../src/bus/router.js';
import { openSqliteBus, SqliteBus, SqliteBusDatabase } from '../../src/bus/sqlite/index.js';
import type { Handler, ReceivedMessage, SubscriptionObserver } from '../../src/bus/types.js';
import { BackendUnavailableError, UnrecoverableError } from '../../src/errors/index.js';
import { encodeEntry, fieldsToRecord } from '../../src/events/codec.js';
import { deadLetterStreamKey, replayStreamKey, streamKey } from '../../src/events/streams.js';
import { eventually } from '../support/redis.js';

const prefix = 'materi:events:deployment';
let dir: string;
let path: string;
const cleanups: (() => Promise<void>)[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'materi-bus-'));
  path = join(dir, 'bus.db');
});

afterEach(async () => {
  vi.restoreAllMocks();
  while (cleanups.length > 0) await cleanups.pop()!();
  rmSync(dir, { recursive: true, force: true });
});

async function open(options: Parameters<typeof openSqliteBus>[1] = {}): Promise<SqliteBus> {
  const bus = await openSqliteBus(path, {
    pollIntervalMs: 20,
    subscriber: { scanIntervalMs: 50 },
    ...options,
  });
  cleanups.push(() => bus.close(0));
  return bus;
}

/** A bus on a connection of its own, as another process would open the file. */
function openAnother(options: ConstructorParameters<typeof SqliteBus>[1] = {}): SqliteBus {
  const bus = new SqliteBus(SqliteBusDatabase.open(path, { pollIntervalMs: 20 }), {
    subscriber: { scanIntervalMs: 50 },
    ...options,
  });
  cleanups.push(() => bus.close(0));
  return bus;
}

async function consume(
  bus: SqliteBus,
  options: {
    group: string;
    types: string[];
    handler: Handler;
    concurrency?: number;
    claimIdleMs?: number;
    maxDeliveries?: number;
    startFrom?: 'beginning' | 'latest';
    observer?: SubscriptionObserver;
    slot?: number;
  },
) {
  const subscriber = bus.subscriber();
  const router = new Router({ subscriber, publisher: bus.publisher, observer: options.observer });
  router.addHandler({
    name: options.group,
    backoff: { baseMs: 100, maxMs: 1000, jitter: 0 },
    claimIdleMs: 2000,
    ...options,
  });
  await router.start();
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await router.close(200);
    await subscriber.close(0);
  };
  cleanups.push(close);
  return { router, subscriber, close };
}

const never: Handler = (_, ctx) =>
  new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));

describe('embedded bus: storage', () => {
  it('stores the same flat fields as the Redis backend, under Redis-like increasing entry ids', async () => {
    const bus = await open();
    const published = await bus.publisher.publishBatch(
      Array.from({ length: 50 }, (_, i) => ({
        type: 'deployment:started',
        data: { deploymentId: `d-${i}` },
      })),
    );
    const stored = bus.range(streamKey(prefix, 'deployment:started'), { count: 100 });
    expect(stored).toHaveLength(50);
    stored.forEach((entry, i) => {
      expect(entry.entryId).toBe(published[i]!.entryId);
      expect(entry.fields).toEqual(fieldsToRecord(encodeEntry(published[i]!.event)));
    });
    const ids = stored.map((e) => e.entryId.split('-').map(Number) as [number, number]);
    expect(ids.every(([ms, n]) => ms > 1_600_000_000_000 && n >= 0)).toBe(true);
    for (let i = 1; i < ids.length; i++) {
      const [ms, n] = ids[i]!;
      const [prevMs, prevN] = ids[i - 1]!;
      expect(ms > prevMs || (ms === prevMs && n === prevN + 1)).toBe(true);
    }
    expect(bus.range(streamKey(prefix, 'deployment:started'), { after: stored[47]!.entryId })).toHaveLength(
      2,
    );
    expect(bus.range(streamKey(prefix, 'deployment:started'), { count: 1, reverse: true })[0]!.entryId).toBe(
      stored[49]!.entryId,
    );
  });

  it('pages through a stream by entry id, also from ids that do not exist', async () => {
    const bus = await open();
    const stream = streamKey(prefix, 'deployment:started');
    const ids: string[] = [];
    for (let round = 0; round < 7; round++) {
      // Other streams' entries interleave, so the stream's seqs have gaps.
      const published = await bus.publisher.publishBatch([
        ...Array.from({ length: 9 }, (_, i) => ({
          type: 'deployment:started',
          data: { deploymentId: `d-${round}-${i}` },
        })),
        { type: 'notification:sent', data: { deploymentId: 'other' } },
      ]);
      ids.push(...published.filter((p) => p.stream === stream).map((p) => p.entryId));
    }
    const paged: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = bus.range(stream, { count: 10, ...(after === undefined ? {} : { after }) });
      if (page.length === 0) break;
      paged.push(...page.map((e) => e.entryId));
      after = page[page.length - 1]!.entryId;
    }
    expect(paged).toEqual(ids);
    const [ms, n] = ids[20]!.split('-').map(Number) as [number, number];
    expect(bus.range(stream, { after: `${ms}-${n}`, count: 1 })[0]!.entryId).toBe(ids[21]);
    expect(bus.range(stream, { after: `${ms - 1}-999999`, count: 1 })[0]!.entryId).toBe(
      ids.find((id) => Number(id.split('-')[0]) >= ms),
    );
    expect(bus.range(stream, { after: '0-0', count: 1 })[0]!.entryId).toBe(ids[0]);
    expect(bus.range(stream, { after: `${Date.now() + 60_000}-0` })).toEqual([]);
    expect(() => bus.range(stream, { after: 'yesterday' })).toThrow(/entry id must look like <ms>-<n>/);
  });

  it('keeps entry ids increasing within a stream when the clock steps back', async () => {
    const bus = await open();
    const first = await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: 'a' } });
    const [ms] = first.entryId.split('-').map(Number);
    vi.spyOn(Date, 'now').mockReturnValue(ms! - 60_000);
    const second = await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: 'b' } });
    expect(second.entryId).toBe(`${ms}-${Number(first.entryId.split('-')[1]) + 1}`);
  });

  it('registers published event streams for discovery, but not raw, dead-letter or replay streams', async () => {
    const bus = await open();
    await bus.publisher.publish({
      type: 'deployment:stage:api:started',
      data: { deploymentId: 'd', stage: 'api' },
    });
    await bus.append(streamKey(prefix, 'validation:started'), { hello: 'world' });
    await bus.append(deadLetterStreamKey(prefix, 'g'), { reason: 'decode' });
    const streams = bus.streams();
    expect(streams.map((s) => [s.stream, s.type])).toEqual([
      [streamKey(prefix, 'deployment:stage:api:started'), 'deployment:stage:api:started'],
      [deadLetterStreamKey(prefix, 'g'), undefined],
      [streamKey(prefix, 'validation:started'), undefined],
    ]);
    expect(bus.streams(prefix).map((s) => s.type)).toEqual(['deployment:stage:api:started']);
  });

  it('opens in WAL mode with synchronous NORMAL by default, and FULL on request', async () => {
    const bus = await open();
    expect(bus.database.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(bus.database.db.pragma('synchronous', { simple: true })).toBe(1);
    expect(bus.database.db.pragma('busy_timeout', { simple: true })).toBe(5000);
    await bus.close();
    const full = await open({ synchronous: 'FULL', busyTimeoutMs: 250 });
    expect(full.database.db.pragma('synchronous', { simple: true })).toBe(2);
    expect(full.database.db.pragma('busy_timeout', { simple: true })).toBe(250);
  });

  it('rejects bad options and unusable files with a message naming them', async () => {
    await expect(openSqliteBus(path, { synchronous: 'OFF' as never })).rejects.toThrow(
      /synchronous must be NORMAL or FULL, got OFF/,
    );
    await expect(openSqliteBus(path, { pollIntervalMs: 0 })).rejects.toThrow(
      /pollIntervalMs must be a positive integer/,
    );
    const blocker = join(dir, 'not-a-dir');
    writeFileSync(blocker, 'x');
    const error = await openSqliteBus(join(blocker, 'bus.db')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackendUnavailableError);
    expect((error as Error).message).toContain(
      `cannot open the embedded event bus at ${join(blocker, 'bus.db')}`,
    );
  });

  it('refuses a file written by a newer schema instead of misreading it', async () => {
    const bus = await open();
    bus.database.db.prepare("UPDATE bus_meta SET value = '99' WHERE key = 'schema_version'").run();
    await bus.close();
    await expect(openSqliteBus(path)).rejects.toThrow(/schema version 99; this Materi knows 1/);
  });
});

describe('embedded bus: waking up', () => {
  it('wakes a subscription of the same bus at once, without waiting for the poll', async () => {
    const bus = await open({ pollIntervalMs: 60_000, subscriber: { scanIntervalMs: 60_000 } });
    const latencies: number[] = [];
    let sentAt = 0;
    await consume(bus, {
      group: 'fast',
      types: ['deployment:started'],
      handler: async () => void latencies.push(performance.now() - sentAt),
    });
    for (let i = 0; i < 5; i++) {
      sentAt = performance.now();
      await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: `d-${i}` } });
      await eventually(() => latencies.length === i + 1, 2000, 1);
    }
    expect(Math.max(...latencies)).toBeLessThan(100);
  });

  it('sees entries another process wrote within the poll interval', async () => {
    const bus = await open({ pollIntervalMs: 50 });
    const seen: string[] = [];
    await consume(bus, {
      group: 'polled',
      types: ['deployment:stage:*:completed'],
      handler: async (e) => void seen.push(e.type),
    });
    const other = openAnother();
    const started = Date.now();
    await other.publisher.publish({
      type: 'deployment:stage:edge:completed',
      data: { deploymentId: 'd', stage: 'edge' },
    });
    await eventually(() => seen.length === 1, 3000, 5);
    expect(seen).toEqual(['deployment:stage:edge:completed']);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('uses next to no CPU while nothing is published (no busy loop)', async () => {
    const bus = await open({ pollIntervalMs: 20 });
    for (const group of ['idle-a', 'idle-b', 'idle-c']) {
      await consume(bus, {
        group,
        types: ['deployment:started', 'deployment:stage:*:started'],
        handler: async () => {},
      });
    }
    await new Promise((r) => setTimeout(r, 200));
    const before = process.cpuUsage();
    await new Promise((r) => setTimeout(r, 1000));
    const used = process.cpuUsage(before);
    expect((used.user + used.system) / 1000).toBeLessThan(150);
  });
});

describe('embedded bus: groups', () => {
  it('reports each group’s lag and pending entries', async () => {
    const bus = await open();
    const stream = streamKey(prefix, 'deployment:started');
    await bus.publisher.publishBatch(
      Array.from({ length: 4 }, (_, i) => ({ type: 'deployment:started', data: { deploymentId: `d-${i}` } })),
    );
    await consume(bus, {
      group: 'stuck',
      types: ['deployment:started'],
      handler: never,
      concurrency: 1,
    });
    const done: string[] = [];
    await consume(bus, {
      group: 'quick',
      types: ['deployment:started'],
      handler: async (e) => void done.push(e.id),
    });
    await eventually(() => done.length === 4 && bus.pendingCount(stream, 'quick') === 0);
    const groups = bus.groups({ stream });
    expect(groups).toEqual([
      { group: 'quick', stream, lastDeliveredId: expect.stringMatching(/^\d+-3$/), pending: 0, lag: 0 },
      { group: 'stuck', stream, lastDeliveredId: expect.stringMatching(/^\d+-0$/), pending: 1, lag: 3 },
    ]);
    expect(bus.consumers('stuck')).toEqual([
      {
        name: expect.stringMatching(/^stuck:.+:\d+:0$/),
        pending: 1,
        idleMs: expect.any(Number),
      },
    ]);
    expect(bus.pending({ group: 'stuck' })).toEqual([
      expect.objectContaining({ stream, deliveryCount: 1, consumer: expect.stringMatching(/^stuck:/) }),
    ]);
  });

  it('starts a new group at the newest entry when asked for the latest only', async () => {
    const bus = await open();
    await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: 'old' } });
    const seen: string[] = [];
    await consume(bus, {
      group: 'late',
      types: ['deployment:started'],
      startFrom: 'latest',
      handler: async (e) => void seen.push(e.deploymentId),
    });
    await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: 'new' } });
    await eventually(() => seen.length === 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(seen).toEqual(['new']);
  });

  it('resumes its own pending entries first after a restart under the same consumer name', async () => {
    const bus = await open();
    await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: 'd' } });
    const first = await consume(bus, { group: 'restart', types: ['deployment:started'], handler: never });
    await eventually(() => bus.pendingCount(streamKey(prefix, 'deployment:started'), 'restart') === 1);
    await first.close();
    const deliveries: number[] = [];
    // A claim idle time far beyond the test: only draining its own pending list can deliver it.
    await consume(bus, {
      group: 'restart',
      types: ['deployment:started'],
      claimIdleMs: 60_000,
      handler: async (_, ctx) => void deliveries.push(ctx.delivery.deliveryCount),
    });
    await eventually(() => deliveries.length === 1, 2000);
    expect(deliveries).toEqual([2]);
  });

  it('keeps retry state in the file: another process continues the backoff where it stopped', async () => {
    const bus = await open();
    const first = await consume(bus, {
      group: 'resume',
      types: ['deployment:started'],
      handler: async () => {
        throw new Error('first attempt fails');
      },
    });
    await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: 'd' } });
    await eventually(() => bus.pending({ group: 'resume' })[0]?.consumer === 'resume@retry');
    await first.close();
    const other = openAnother();
    const deliveries: number[] = [];
    await consume(other, {
      group: 'resume',
      types: ['deployment:started'],
      slot: 3,
      handler: async (_, ctx) => void deliveries.push(ctx.delivery.deliveryCount),
    });
    await eventually(() => deliveries.length === 1);
    expect(deliveries).toEqual([2]);
    await eventually(() => bus.pending({ group: 'resume' }).length === 0);
  });

  it('acknowledges and counts pending entries whose rows were deleted, without handling them', async () => {
    const bus = await open();
    const stream = streamKey(prefix, 'deployment:started');
    await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: 'd' } });
    const first = await consume(bus, { group: 'gone', types: ['deployment:started'], handler: never });
    await eventually(() => bus.pendingCount(stream, 'gone') === 1);
    await first.close();
    bus.database.db.prepare('DELETE FROM bus_entries WHERE stream = ?').run(stream);
    const vanished: number[] = [];
    const handled: string[] = [];
    await consume(bus, {
      group: 'gone',
      types: ['deployment:started'],
      slot: 1,
      claimIdleMs: 300,
      observer: { vanished: (_g, _s, n) => void vanished.push(n) },
      handler: async (e) => void handled.push(e.id),
    });
    await eventually(() => vanished.length === 1, 3000);
    expect(vanished).toEqual([1]);
    expect(handled).toEqual([]);
    expect(bus.pendingCount(stream, 'gone')).toBe(0);
  });

  it('dead-letters in one transaction with the ack: a failed dead-letter write leaves the entry pending', async () => {
    const bus = await open();
    const stream = streamKey(prefix, 'validation:started');
    const dlq = deadLetterStreamKey(prefix, 'atomic');
    bus.database.db.exec(`
      CREATE TRIGGER refuse_dlq BEFORE INSERT ON bus_entries WHEN NEW.stream = '${dlq}'
      BEGIN SELECT RAISE(ABORT, 'disk is full'); END;
    `);
    const errors: string[] = [];
    let calls = 0;
    await consume(bus, {
      group: 'atomic',
      types: ['validation:started'],
      claimIdleMs: 400,
      observer: { error: (error, where) => void errors.push(`${where}: ${(error as Error).message}`) },
      handler: async () => {
        calls++;
        throw new UnrecoverableError('spec is malformed');
      },
    });
    await bus.publisher.publish({ type: 'validation:started', data: { deploymentId: 'd' } });
    await eventually(() => errors.length === 1);
    expect(errors).toEqual(['settle: disk is full']);
    expect(bus.range(dlq)).toEqual([]);
    expect(bus.pendingCount(stream, 'atomic')).toBe(1);
    bus.database.db.exec('DROP TRIGGER refuse_dlq');
    // Still pending, so it comes back after the claim idle time and is dead-lettered then.
    const [letter] = await eventually(() => {
      const letters = bus.range(dlq);
      return letters.length ? letters : undefined;
    }, 5000);
    expect(letter!.fields).toMatchObject({
      reason: 'unrecoverable',
      attempts: '2',
      error: 'spec is malformed',
    });
    expect(calls).toBe(2);
    expect(bus.pendingCount(stream, 'atomic')).toBe(0);
  });
});

describe('embedded bus: dead letters, replays and inspection', () => {
  it('lets a dead-letter subscription read the dead-letter streams of every group, old and new', async () => {
    const bus = await open();
    const poison: Handler = async () => {
      throw new UnrecoverableError('bad spec');
    };
    await consume(bus, { group: 'early', types: ['validation:started'], handler: poison });
    await bus.publisher.publish({ type: 'validation:started', data: { deploymentId: 'd-1' } });
    await eventually(() => bus.range(deadLetterStreamKey(prefix, 'early')).length === 1);

    const recorded: ReceivedMessage[] = [];
    const recorder = bus.subscriber();
    await recorder.subscribe(
      { group: 'recorder', source: 'dead-letters', types: ['*'], concurrency: 2 },
      async (message) => {
        recorded.push(message);
        return { kind: 'ack' };
      },
    );
    cleanups.push(() => recorder.close(0));
    await consume(bus, { group: 'late', types: ['health:check:started'], handler: poison });
    await bus.publisher.publish({ type: 'health:check:started', data: { deploymentId: 'd-2' } });
    await eventually(() => recorded.length === 2);
    expect(recorded.map((m) => [m.stream, m.fields.group, m.fields.reason]).sort()).toEqual([
      [deadLetterStreamKey(prefix, 'early'), 'early', 'unrecoverable'],
      [deadLetterStreamKey(prefix, 'late'), 'late', 'unrecoverable'],
    ]);
    expect(
      bus
        .streams(prefix)
        .map((s) => s.deadLetterGroup)
        .filter(Boolean),
    ).toEqual(['early', 'late']);
  });

  it('replays a dead-lettered event to its group only, naming the original entry', async () => {
    const bus = await open();
    let broken = true;
    const handled: string[] = [];
    const others: string[] = [];
    await consume(bus, {
      group: 'fixable',
      types: ['deployment:started'],
      handler: async (e) => {
        if (broken) throw new UnrecoverableError('registry down');
        handled.push(e.id);
      },
    });
    await consume(bus, {
      group: 'bystander',
      types: ['deployment:started'],
      handler: async (e) => void others.push(e.id),
    });
    const { event, entryId } = await bus.publisher.publish({
      type: 'deployment:started',
      data: { deploymentId: 'd' },
    });
    const [letter] = await eventually(() => {
      const letters = bus.range(deadLetterStreamKey(prefix, 'fixable'));
      return letters.length ? letters : undefined;
    });
    await eventually(() => others.length === 1);
    broken = false;
    const payload = JSON.parse(letter!.fields.payload!) as Record<string, string>;
    const replayId = await bus.replay('fixable', payload, {
      stream: letter!.fields.source_stream!,
      entryId: letter!.fields.entry_id!,
    });
    await eventually(() => handled.length === 1);
    expect(handled).toEqual([event.id]);
    const [replayed] = bus.range(replayStreamKey(prefix, 'fixable'));
    expect(replayed).toMatchObject({
      entryId: replayId,
      fields: {
        id: event.id,
        replay_of_stream: streamKey(prefix, 'deployment:started'),
        replay_of_entry: entryId,
      },
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(others).toEqual([event.id]);
  });

  it('reports groups, consumers and heartbeats in the shape of the Redis inspector', async () => {
    const bus = await open({ heartbeatIntervalMs: 200 });
    const stream = streamKey(prefix, 'dependency:check:started');
    await bus.publisher.publishBatch(
      Array.from({ length: 3 }, (_, i) => ({
        type: 'dependency:check:started',
        data: { deploymentId: `d-${i}` },
      })),
    );
    let calls = 0;
    await consume(bus, {
      group: 'checker',
      types: ['dependency:check:started'],
      concurrency: 1,
      handler: async (e, ctx) => {
        calls++;
        if (e.deploymentId === 'd-0' && ctx.delivery.deliveryCount === 1) throw new Error('flaky');
        await never(e, ctx);
      },
    });
    await eventually(() => calls === 2);
    const started = new Date(Date.now() - 1000);
    await bus.inspector.beat({
      host: 'elsewhere',
      pid: 42,
      role: 'worker checker',
      groups: ['checker'],
      startedAt: started,
      beatAt: new Date(),
    });
    const [group] = await bus.inspector.groups();
    expect(group).toMatchObject({ group: 'checker', lag: 1, pending: 2, deadLettered: 0 });
    expect(group!.streams).toEqual([
      { stream, lag: 1, pending: 2, oldestPendingAgeMs: expect.any(Number) },
      { stream: replayStreamKey(prefix, 'checker'), lag: 0, pending: 0, oldestPendingAgeMs: null },
    ]);
    const states = group!.consumers.map((c) => [c.name.replace(/:\d+:0$/, ':<pid>:0'), c.pending, c.state]);
    // This process sends no heartbeat here, so its consumer shows as dead; the parked retry as retry;
    // the process that beats for the group but has not read yet as an alive consumer.
    expect(states).toEqual([
      ['checker:elsewhere:<pid>:0', 0, 'alive'],
      [expect.stringMatching(/^checker:.+:<pid>:0$/), 1, 'dead'],
      ['checker@retry', 1, 'retry'],
    ]);
    const own = () => group!.consumers.find((c) => c.pid === process.pid)!;
    await bus.inspector.beat({
      host: own().host!,
      pid: process.pid,
      role: 'test',
      groups: ['checker'],
      startedAt: started,
      beatAt: new Date(),
    });
    const [again] = await bus.inspector.groups();
    expect(again!.consumers.find((c) => c.pid === process.pid)!.state).toBe('alive');
    expect((await bus.inspector.heartbeats()).map((b) => [b.pid, b.role])).toEqual(
      expect.arrayContaining([
        [42, 'worker checker'],
        [process.pid, 'test'],
      ]),
    );
    await bus.inspector.beat(
      {
        host: 'elsewhere',
        pid: 42,
        role: 'worker checker',
        groups: [],
        startedAt: started,
        beatAt: new Date(),
      },
      true,
    );
    expect((await bus.inspector.heartbeats()).map((b) => b.pid)).toEqual([process.pid]);
  });
});

describe('embedded bus: trimming', () => {
  it('never trims entries a group has not acknowledged', async () => {
    const bus = await open();
    const stream = streamKey(prefix, 'deployment:started');
    const publish = (n: number, tag: string) =>
      bus.publisher.publishBatch(
        Array.from({ length: n }, (_, i) => ({
          type: 'deployment:started',
          data: { deploymentId: `${tag}-${i}` },
        })),
      );
    await publish(5, 'acked');
    const reader = await consume(bus, {
      group: 'reader',
      types: ['deployment:started'],
      handler: async () => {},
    });
    await eventually(() => bus.groups({ stream })[0]?.lag === 0 && bus.pendingCount(stream, 'reader') === 0);
    await reader.close();
    await publish(5, 'unread');

    const protectedTrim = await bus.publisher.trim('deployment:started', { maxLen: 0 });
    expect(protectedTrim).toEqual({ stream, removed: 5, protectedByGroups: true });
    expect(bus.range(stream).map((e) => JSON.parse(e.fields.data!).deploymentId)).toEqual([
      'unread-0',
      'unread-1',
      'unread-2',
      'unread-3',
      'unread-4',
    ]);

    // One entry in flight (pending) keeps it and everything after it.
    await consume(bus, { group: 'reader', types: ['deployment:started'], handler: never, concurrency: 1 });
    await eventually(() => bus.pendingCount(stream, 'reader') === 1);
    expect(await bus.publisher.trim('deployment:started', { maxLen: 0 })).toEqual({
      stream,
      removed: 0,
      protectedByGroups: true,
    });
    expect(bus.range(stream)).toHaveLength(5);
  });

  it('trims by age and by length where no group needs the entries', async () => {
    const bus = await open();
    const stream = streamKey(prefix, 'notification:sent');
    const now = Date.now();
    const clock = vi.spyOn(Date, 'now').mockReturnValue(now - 3_600_000);
    await bus.publisher.publishBatch(
      Array.from({ length: 3 }, () => ({ type: 'notification:sent', data: { deploymentId: 'old' } })),
    );
    clock.mockRestore();
    await bus.publisher.publishBatch(
      Array.from({ length: 6 }, () => ({ type: 'notification:sent', data: { deploymentId: 'new' } })),
    );
    expect(await bus.publisher.trim('notification:sent', { maxAgeMs: 60_000 })).toEqual({
      stream,
      removed: 3,
      protectedByGroups: false,
    });
    expect(await bus.publisher.trim('notification:sent', { maxLen: 4 })).toEqual({
      stream,
      removed: 2,
      protectedByGroups: false,
    });
    expect(bus.range(stream)).toHaveLength(4);
    expect(await bus.publisher.trim('notification:sent', { maxLen: 10, maxAgeMs: 60_000 })).toMatchObject({
      removed: 0,
    });
    await expect(bus.publisher.trim('notification:sent', { maxLen: -1 })).rejects.toThrow(
      /maxLen must be an integer >= 0/,
    );
  });
});

describe('embedded bus: idempotency store', () => {
  it('hands an event id to one consumer at a time and remembers it once done', async () => {
    const bus = await open();
    const store = bus.idempotency;
    expect(await store.begin('g', 'e1', 10_000)).toBe('acquired');
    expect(await store.begin('g', 'e1', 10_000)).toBe('busy');
    expect(await store.begin('other', 'e1', 10_000)).toBe('acquired');
    await store.release('g', 'e1');
    expect(await store.begin('g', 'e1', 10_000)).toBe('acquired');
    await store.complete('g', 'e1');
    expect(await store.begin('g', 'e1', 10_000)).toBe('done');
    await store.release('g', 'e1');
    expect(await store.begin('g', 'e1', 10_000)).toBe('done');
  });

  it('lets another consumer take an event whose lease expired, and forgets ids after the window', async () => {
    const bus = await open({ idempotencyWindowMs: 50 });
    const store = bus.idempotency;
    expect(await store.begin('g', 'crashed', 30)).toBe('acquired');
    await new Promise((r) => setTimeout(r, 60));
    expect(await store.begin('g', 'crashed', 30)).toBe('acquired');
    await store.complete('g', 'crashed');
    expect(await store.begin('g', 'crashed', 30)).toBe('done');
    await new Promise((r) => setTimeout(r, 60));
    expect(await store.deleteExpired()).toBe(1);
    expect(await store.begin('g', 'crashed', 30)).toBe('acquired');
  });

  it('shares markers between processes and commits concurrent calls together', async () => {
    const bus = await open();
    const other = openAnother();
    const results = await Promise.all(
      Array.from({ length: 20 }, () => bus.idempotency.begin('g', 'same', 10_000)),
    );
    expect(results.filter((r) => r === 'acquired')).toHaveLength(1);
    expect(await other.idempotency.begin('g', 'same', 10_000)).toBe('busy');
    await bus.idempotency.complete('g', 'same');
    expect(await other.idempotency.begin('g', 'same', 10_000)).toBe('done');
  });

  it('with the middleware, runs a handler once for a duplicate published by another process', async () => {
    const bus = await open();
    const handled: string[] = [];
    const subscriber = bus.subscriber();
    const router = new Router({
      subscriber,
      publisher: bus.publisher,
      middleware: [idempotency({ store: bus.idempotency, leaseMs: 2000 })],
    });
    router.addHandler({
      name: 'once',
      group: 'once',
      types: ['rollback:completed'],
      concurrency: 2,
      backoff: { baseMs: 50, maxMs: 200, jitter: 0 },
      handler: async (e) => void handled.push(e.id),
    });
    await router.start();
    cleanups.push(async () => {
      await router.close(200);
      await subscriber.close(0);
    });
    const first = await bus.publisher.publish({ type: 'rollback:completed', data: { deploymentId: 'd' } });
    await openAnother().publisher.publish({
      type: 'rollback:completed',
      data: { deploymentId: 'd' },
      id: first.event.id,
    });
    await eventually(
      () => bus.pendingCount(streamKey(prefix, 'rollback:completed'), 'once') === 0 && handled.length > 0,
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(handled).toEqual([first.event.id]);
  });
});

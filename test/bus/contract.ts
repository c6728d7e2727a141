/**
 * The universal Publisher/Subscriber contract (Watermill's idea): every backend runs this same
 * suite. A backend gives a harness; `features` switch off what a backend cannot do, with the
 * reason documented in docs/delivery.md.
 */
import { randomUUID } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { afterEach, describe, expect, it } from 'vitest';
import { idempotency } from '../../src/bus/middleware/index.js';
import { Router } from '../../src/bus/router.js';
import type {
  Handler,
  IdempotencyStore,
  Publisher,
  Subscriber,
  Subscription,
  SubscriptionObserver,
} from '../../src/bus/types.js';
import { UnrecoverableError } from '../../src/errors/index.js';
import { encodeEntry } from '../../src/events/codec.js';
import type { DeploymentEvent } from '../../src/events/envelope.js';
import { DeploymentStartedEventSchema } from '../../src/events/index.js';
import { eventually } from '../support/redis.js';

/** Tunables every backend accepts, small so the suite runs in seconds. */
export interface TestSubscriberSettings {
  blockMs: number;
  scanIntervalMs: number;
  discoveryIntervalMs: number;
}

export interface BusHarness {
  prefix: string;
  publisher: Publisher;
  /** A new subscriber (its own connections), as another process would have. */
  subscriber(settings?: Partial<TestSubscriberSettings>): Subscriber;
  idempotency: IdempotencyStore;
  /** Writes an entry as a third party would (raw fields, no Materi code). */
  writeRaw(type: string, fields: Record<string, string>): Promise<void>;
  /** Writes to a group's replay stream. */
  writeReplay(group: string, fields: Record<string, string>): Promise<void>;
  /** Entries of a group's dead-letter stream. */
  deadLetters(group: string): Promise<Record<string, string>[]>;
  /** Entries of a group not yet acknowledged on the stream of a type. */
  pendingCount(type: string, group: string): Promise<number>;
  close(): Promise<void>;
}

export interface BusFeatures {
  /** Several independent processes may consume one group. */
  multiProcess: boolean;
}

export function busContract(
  backend: string,
  openHarness: () => Promise<BusHarness>,
  features: BusFeatures = { multiProcess: true },
): void {
  describe(`event bus contract: ${backend}`, () => {
    let bus: BusHarness;
    const cleanups: (() => Promise<void>)[] = [];

    async function open(): Promise<BusHarness> {
      bus = await openHarness();
      cleanups.push(() => bus.close());
      return bus;
    }

    afterEach(async () => {
      while (cleanups.length > 0) await cleanups.pop()!();
    });

    /** Starts a router with one handler and registers its shutdown. */
    async function consume(options: {
      group: string;
      types: string[];
      handler: Handler;
      concurrency?: number;
      orderedBy?: 'deployment';
      maxDeliveries?: number;
      claimIdleMs?: number;
      backoffMs?: number;
      withIdempotency?: boolean;
      leaseMs?: number;
      isConsumerGone?: (consumer: string) => Promise<boolean>;
      observer?: SubscriptionObserver;
      slot?: number;
      subscriber?: Subscriber;
    }): Promise<Router> {
      const subscriber = options.subscriber ?? bus.subscriber();
      const router = new Router({
        subscriber,
        publisher: bus.publisher,
        observer: options.observer,
        middleware: options.withIdempotency
          ? [
              idempotency({
                store: bus.idempotency,
                leaseMs: options.leaseMs ?? 5000,
                isConsumerGone: options.isConsumerGone,
              }),
            ]
          : [],
      });
      router.addHandler({
        name: options.group,
        group: options.group,
        types: options.types,
        handler: options.handler,
        concurrency: options.concurrency,
        orderedBy: options.orderedBy,
        maxDeliveries: options.maxDeliveries,
        claimIdleMs: options.claimIdleMs ?? 2000,
        backoff: { baseMs: options.backoffMs ?? 100, maxMs: 2000, jitter: 0 },
        slot: options.slot,
      });
      await router.start();
      cleanups.push(async () => {
        await router.close(500);
        await subscriber.close(0);
      });
      return router;
    }

    it('delivers every event to every group, and once within a group', async () => {
      await open();
      const seen = { a: [] as string[], b: [] as string[] };
      await consume({
        group: 'group-a',
        types: ['deployment:started'],
        handler: async (e) => void seen.a.push(e.id),
        concurrency: 3,
      });
      await consume({
        group: 'group-b',
        types: ['deployment:started'],
        handler: async (e) => void seen.b.push(e.id),
      });
      const published = await bus.publisher.publishBatch(
        Array.from({ length: 20 }, (_, i) => ({
          type: 'deployment:started',
          data: { deploymentId: `d-${i}` },
        })),
      );
      const ids = published.map((p) => p.event.id).sort();
      await eventually(() => seen.a.length === 20 && seen.b.length === 20);
      expect([...seen.a].sort()).toEqual(ids);
      expect([...seen.b].sort()).toEqual(ids);
      await eventually(async () => (await bus.pendingCount('deployment:started', 'group-a')) === 0);
    });

    it('shares a group between consumers so each event is handled once', async () => {
      await open();
      const handledBy = new Map<string, string>();
      const duplicates: string[] = [];
      const handler =
        (who: string): Handler =>
        async (e) => {
          if (handledBy.has(e.id)) duplicates.push(e.id);
          handledBy.set(e.id, who);
          await new Promise((r) => setTimeout(r, 5));
        };
      await consume({ group: 'shared', types: ['validation:started'], handler: handler('one'), slot: 0 });
      await consume({ group: 'shared', types: ['validation:started'], handler: handler('two'), slot: 1 });
      await bus.publisher.publishBatch(
        Array.from({ length: 30 }, (_, i) => ({
          type: 'validation:started',
          data: { deploymentId: `d-${i}` },
        })),
      );
      await eventually(() => handledBy.size === 30);
      expect(duplicates).toEqual([]);
      expect(new Set(handledBy.values()).size).toBe(2);
    });

    it('retries a failing handler with growing delays, counting deliveries, until it succeeds', async () => {
      await open();
      const attempts: { at: number; delivery: number }[] = [];
      await consume({
        group: 'flaky',
        types: ['health:check:started'],
        backoffMs: 150,
        handler: async (_, ctx) => {
          attempts.push({ at: Date.now(), delivery: ctx.delivery.deliveryCount });
          if (attempts.length < 3) throw new Error('not yet');
        },
      });
      await bus.publisher.publish({ type: 'health:check:started', data: { deploymentId: 'd' } });
      await eventually(() => attempts.length === 3);
      expect(attempts.map((a) => a.delivery)).toEqual([1, 2, 3]);
      const first = attempts[1]!.at - attempts[0]!.at;
      const second = attempts[2]!.at - attempts[1]!.at;
      expect(first).toBeGreaterThanOrEqual(140);
      expect(second).toBeGreaterThanOrEqual(290);
      await eventually(async () => (await bus.pendingCount('health:check:started', 'flaky')) === 0);
      expect(await bus.deadLetters('flaky')).toEqual([]);
    });

    it('dead-letters a poison event after the last delivery, with its error and payload', async () => {
      await open();
      let calls = 0;
      await consume({
        group: 'poisoned',
        types: ['deployment:failed'],
        maxDeliveries: 3,
        backoffMs: 50,
        handler: async () => {
          calls++;
          throw new Error(`boom ${calls}`);
        },
      });
      const { event } = await bus.publisher.publish({
        type: 'deployment:failed',
        data: { deploymentId: 'd-9', reason: 'x' },
      });
      const letters = await eventually(async () => {
        const found = await bus.deadLetters('poisoned');
        return found.length === 1 ? found : undefined;
      });
      const letter = letters[0];
      expect(calls).toBe(3);
      expect(letter).toMatchObject({
        source_stream: `${bus.prefix}:deployment:failed`,
        event_id: event.id,
        type: 'deployment:failed',
        group: 'poisoned',
        attempts: '3',
        reason: 'max-deliveries',
        error: 'boom 3',
        deployment_id: 'd-9',
        correlation_id: event.correlationId,
      });
      expect(letter!.entry_id).toMatch(/^\d+-\d+$/);
      expect(letter!.stack).toContain('Error: boom 3');
      expect(JSON.parse(letter!.payload!)).toMatchObject({ id: event.id, type: 'deployment:failed' });
      expect(await bus.pendingCount('deployment:failed', 'poisoned')).toBe(0);
    });

    it('dead-letters at once when the handler says the error is unrecoverable', async () => {
      await open();
      let calls = 0;
      await consume({
        group: 'strict',
        types: ['validation:started'],
        handler: async () => {
          calls++;
          throw new UnrecoverableError('spec is malformed');
        },
      });
      await bus.publisher.publish({ type: 'validation:started', data: { deploymentId: 'd' } });
      const [letter] = await eventually(async () => {
        const letters = await bus.deadLetters('strict');
        return letters.length ? letters : undefined;
      });
      expect(calls).toBe(1);
      expect(letter).toMatchObject({ attempts: '1', reason: 'unrecoverable', error: 'spec is malformed' });
    });

    it('dead-letters a malformed third-party entry at once and keeps consuming', async () => {
      await open();
      const handled: string[] = [];
      await consume({
        group: 'robust',
        types: ['deployment:started'],
        handler: async (e) => void handled.push(e.id),
      });
      await bus.writeRaw('deployment:started', { id: 'not-a-uuid', type: 'deployment:started', data: '{' });
      const good = await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: 'ok' } });
      await eventually(() => handled.includes(good.event.id));
      const [letter] = await eventually(async () => {
        const letters = await bus.deadLetters('robust');
        return letters.length ? letters : undefined;
      });
      expect(letter).toMatchObject({ reason: 'decode', attempts: '1' });
      expect(letter!.error).toMatch(/field "id" is not a UUID/);
      expect(handled).toEqual([good.event.id]);
    });

    it('discovers per-stage streams that appear after it subscribed', async () => {
      await open();
      const stages: string[] = [];
      await consume({
        group: 'stage-watcher',
        types: ['deployment:stage:*:completed'],
        handler: async (e) => void stages.push(e.type),
      });
      await bus.publisher.publish({
        type: 'deployment:stage:folio:completed',
        data: { deploymentId: 'd', stage: 'folio' },
      });
      await bus.publisher.publish({
        type: 'deployment:stage:folio:started',
        data: { deploymentId: 'd', stage: 'folio' },
      });
      await bus.publisher.publish({
        type: 'deployment:stage:edge-1:completed',
        data: { deploymentId: 'd', stage: 'edge-1' },
      });
      await eventually(() => stages.length === 2, 8000);
      expect(stages.sort()).toEqual([
        'deployment:stage:edge-1:completed',
        'deployment:stage:folio:completed',
      ]);
    });

    it('handles CRITICAL and HIGH events before NORMAL ones when they wait together', async () => {
      await open();
      // The backlog exists before the consumer starts, so it sees all of it at once.
      await bus.publisher.publishBatch([
        ...Array.from({ length: 5 }, (_, i) => ({
          type: 'deployment:started',
          data: { deploymentId: `n-${i}` },
        })),
        { type: 'deployment:stage:api:started', data: { deploymentId: 'high', stage: 'api' } },
        { type: 'rollback:initiated', data: { deploymentId: 'critical' } },
      ]);
      const order: string[] = [];
      await consume({
        group: 'prioritised',
        types: ['deployment:started', 'deployment:stage:*:started', 'rollback:initiated'],
        concurrency: 1,
        handler: async (e) => void order.push(e.deploymentId),
      });
      await eventually(() => order.length === 7, 8000);
      expect(order.slice(0, 2)).toEqual(['critical', 'high']);
    });

    it('never runs more handlers at once than its concurrency', async () => {
      await open();
      let running = 0;
      let peak = 0;
      let done = 0;
      await consume({
        group: 'bounded',
        types: ['dependency:check:started'],
        concurrency: 3,
        handler: async () => {
          running++;
          peak = Math.max(peak, running);
          await new Promise((r) => setTimeout(r, 20));
          running--;
          done++;
        },
      });
      await bus.publisher.publishBatch(
        Array.from({ length: 15 }, () => ({ type: 'dependency:check:started', data: { deploymentId: 'd' } })),
      );
      await eventually(() => done === 15);
      expect(peak).toBe(3);
    });

    it('ordered by deployment: one deployment one event at a time in order, deployments in parallel', async () => {
      await open();
      const running = new Map<string, number>();
      let overlapWithin = 0;
      let peak = 0;
      const handled: string[] = [];
      await consume({
        group: 'ordered',
        types: ['dependency:check:started'],
        concurrency: 8,
        orderedBy: 'deployment',
        handler: async (event) => {
          const mine = (running.get(event.deploymentId) ?? 0) + 1;
          running.set(event.deploymentId, mine);
          if (mine > 1) overlapWithin++;
          peak = Math.max(
            peak,
            [...running.values()].reduce((a, b) => a + b, 0),
          );
          await new Promise((r) => setTimeout(r, 15));
          running.set(event.deploymentId, running.get(event.deploymentId)! - 1);
          handled.push(`${event.deploymentId}:${event.correlationId}`);
        },
      });
      const deployments = ['a', 'b', 'c', 'd'];
      await bus.publisher.publishBatch(
        Array.from({ length: 5 }, (_, i) =>
          deployments.map((d) => ({
            type: 'dependency:check:started',
            data: { deploymentId: d },
            correlationId: `00000000-0000-4000-8000-00000000000${i}`,
          })),
        ).flat(),
      );
      await eventually(() => handled.length === 20);
      expect(overlapWithin).toBe(0);
      expect(peak).toBeGreaterThan(1);
      for (const d of deployments) {
        expect(handled.filter((h) => h.startsWith(`${d}:`))).toEqual(
          Array.from({ length: 5 }, (_, i) => `${d}:00000000-0000-4000-8000-00000000000${i}`),
        );
      }
    });

    it('gives handlers a publisher that carries correlation and causation', async () => {
      await open();
      const results: DeploymentEvent[] = [];
      await consume({
        group: 'validator-like',
        types: ['validation:started'],
        handler: async (e, ctx) => {
          await ctx.publisher.publish({
            type: 'validation:completed',
            data: { deploymentId: e.deploymentId },
          });
        },
      });
      await consume({
        group: 'observer',
        types: ['validation:completed'],
        handler: async (e) => void results.push(e),
      });
      const request = await bus.publisher.publish({
        type: 'validation:started',
        data: { deploymentId: 'd-7' },
        correlationId: 'corr-7',
      });
      await eventually(() => results.length === 1);
      expect(results[0]).toMatchObject({
        correlationId: 'corr-7',
        causationId: request.event.id,
        deploymentId: 'd-7',
      });
    });

    it('with the idempotency middleware, handles a duplicated event id once', async () => {
      await open();
      const handled: string[] = [];
      await consume({
        group: 'idempotent',
        types: ['rollback:completed'],
        concurrency: 4,
        withIdempotency: true,
        handler: async (e) => {
          handled.push(e.id);
          await new Promise((r) => setTimeout(r, 30));
        },
      });
      const id = randomUUID();
      // A publisher retry after a lost reply stores the same event twice.
      await bus.publisher.publishBatch([
        { type: 'rollback:completed', data: { deploymentId: 'd' }, id },
        { type: 'rollback:completed', data: { deploymentId: 'd' }, id },
        { type: 'rollback:completed', data: { deploymentId: 'd' }, id },
      ]);
      await eventually(async () => (await bus.pendingCount('rollback:completed', 'idempotent')) === 0);
      await new Promise((r) => setTimeout(r, 300));
      expect(handled).toEqual([id]);
    });

    it('passes a lease on to the consumer its entry was reclaimed by; a duplicate entry waits or takes over from a gone holder', async () => {
      await open();
      const store = bus.idempotency;
      const group = 'leases';
      const id = randomUUID();
      const first = { consumer: 'leases:h:1:0', stream: `${bus.prefix}:deployment:started`, entryId: '1-0' };
      const reclaimer = { ...first, consumer: 'leases:h:2:0' };
      const duplicate = { ...reclaimer, consumer: 'leases:h:2:1', entryId: '2-0' };
      expect(await store.begin(group, id, 60_000, first)).toBe('acquired');
      expect(await store.begin(group, id, 60_000, duplicate)).toBe('busy');
      expect((await store.heldBy(group, id))?.consumer).toBe(first.consumer);
      // The pending list gave the entry to another consumer: its lease is taken over at once.
      expect(await store.begin(group, id, 60_000, reclaimer)).toBe('acquired');
      // The first consumer, late, gives back only a lease it still holds.
      await store.release(group, id, first);
      const held = await store.heldBy(group, id);
      expect(held?.consumer).toBe(reclaimer.consumer);
      expect(await store.takeOver(group, id, 'running\nsomething else', duplicate, 60_000)).toBe(false);
      expect(await store.takeOver(group, id, held!.marker, duplicate, 60_000)).toBe(true);
      expect((await store.heldBy(group, id))?.consumer).toBe(duplicate.consumer);
      await store.release(group, id, duplicate);
      expect(await store.heldBy(group, id)).toBeUndefined();
      expect(await store.begin(group, id, 60_000, first)).toBe('acquired');
      await store.complete(group, id);
      expect(await store.begin(group, id, 60_000, reclaimer)).toBe('done');
      expect(await store.heldBy(group, id)).toBeUndefined();
      // A lease taken without a holder is anonymous: only its expiry or a release frees it.
      const anonymous = randomUUID();
      expect(await store.begin(group, anonymous, 60_000)).toBe('acquired');
      expect(await store.begin(group, anonymous, 60_000, first)).toBe('busy');
      expect(await store.heldBy(group, anonymous)).toBeUndefined();
    });

    it('handles at once an entry reclaimed from a consumer that stopped mid-handling, with a lease far longer than the claim idle time', async () => {
      await open();
      let started = false;
      const stopping = bus.subscriber();
      await consume({
        group: 'takeover',
        types: ['deployment:started'],
        subscriber: stopping,
        withIdempotency: true,
        leaseMs: 120_000,
        claimIdleMs: 600,
        // Never settles, as if its process froze: its lease stays, its entry stays pending.
        handler: () => {
          started = true;
          return new Promise<void>(() => {});
        },
      });
      await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: 'frozen' } });
      await eventually(() => started);
      await stopping.close(0);
      const handled: number[] = [];
      const retried: unknown[] = [];
      await consume({
        group: 'takeover',
        types: ['deployment:started'],
        slot: 1,
        withIdempotency: true,
        leaseMs: 120_000,
        claimIdleMs: 600,
        observer: { retried: (_m, error) => void retried.push(error) },
        handler: async (_e, context) => void handled.push(context.delivery.deliveryCount),
      });
      await eventually(() => handled.length === 1, 15_000);
      expect(handled[0]).toBeGreaterThanOrEqual(2);
      expect(retried).toEqual([]);
    });

    it('takes over the lease of a duplicate entry whose holder is gone', async () => {
      await open();
      const id = randomUUID();
      const gone = 'dupes:ghost:1:0';
      // A consumer that is gone took the event from another entry and never finished it.
      expect(
        await bus.idempotency.begin('dupes', id, 120_000, {
          consumer: gone,
          stream: `${bus.prefix}:deployment:started`,
          entryId: '1-0',
        }),
      ).toBe('acquired');
      const handled: string[] = [];
      const retried: unknown[] = [];
      const asked: string[] = [];
      await consume({
        group: 'dupes',
        types: ['deployment:started'],
        withIdempotency: true,
        leaseMs: 120_000,
        isConsumerGone: async (consumer) => {
          asked.push(consumer);
          return consumer === gone;
        },
        observer: { retried: (_m, error) => void retried.push(error) },
        handler: async (e) => void handled.push(e.id),
      });
      await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: 'dup' }, id });
      await eventually(() => handled.length === 1);
      expect(handled).toEqual([id]);
      expect(asked).toEqual([gone]);
      expect(retried).toEqual([]);
    });

    it('acknowledges once deferred work succeeded, never when it failed, and frees the slot meanwhile', async () => {
      await open();
      let openGate!: () => void;
      const gate = new Promise<void>((r) => (openGate = r));
      const deliveries: string[] = [];
      await consume({
        group: 'deferred',
        types: ['deployment:started'],
        concurrency: 1,
        claimIdleMs: 600,
        handler: async (e, context) => {
          const name = (e.data as { deploymentId: string }).deploymentId;
          deliveries.push(`${name}#${context.delivery.deliveryCount}`);
          if (name === 'gated') context.deferAck(gate);
          if (name === 'failing' && context.delivery.deliveryCount === 1) {
            context.deferAck(Promise.reject(new Error('marker write failed')));
          }
        },
      });
      await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: 'gated' } });
      await eventually(() => deliveries.includes('gated#1'));
      // The only slot is free while the gated entry waits for its ack.
      await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: 'next' } });
      await eventually(() => deliveries.includes('next#1'));
      await new Promise((r) => setTimeout(r, 200));
      expect(await bus.pendingCount('deployment:started', 'deferred')).toBe(1);
      openGate();
      await eventually(async () => (await bus.pendingCount('deployment:started', 'deferred')) === 0);
      // Deferred work that fails leaves the entry pending; it comes back and is then acknowledged.
      await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: 'failing' } });
      await eventually(() => deliveries.includes('failing#2'), 10_000);
      await eventually(async () => (await bus.pendingCount('deployment:started', 'deferred')) === 0);
      expect(deliveries).toEqual(['gated#1', 'next#1', 'failing#1', 'failing#2']);
    });

    it('closes within its grace period when deferred work never finishes, leaving the entry pending', async () => {
      await open();
      let handled = 0;
      const subscriber = bus.subscriber();
      const router = await consume({
        group: 'deferred-hung',
        types: ['deployment:started'],
        subscriber,
        handler: async (_e, context) => {
          handled++;
          context.deferAck(new Promise<void>(() => {}));
        },
      });
      await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: 'hung' } });
      await eventually(() => handled === 1);
      const started = Date.now();
      await router.close(200);
      expect(Date.now() - started).toBeLessThan(3000);
      expect(await bus.pendingCount('deployment:started', 'deferred-hung')).toBe(1);
    });

    it('reclaims an entry left pending by a consumer that stopped mid-handling', async () => {
      await open();
      const first = bus.subscriber();
      let firstStarted = false;
      await consume({
        group: 'reclaim',
        types: ['deployment:completed'],
        subscriber: first,
        claimIdleMs: 600,
        handler: async (_, ctx) => {
          firstStarted = true;
          // Never finishes on its own; the shutdown below aborts it.
          await new Promise((_, reject) =>
            ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)),
          );
        },
      });
      const { event } = await bus.publisher.publish({
        type: 'deployment:completed',
        data: { deploymentId: 'd' },
      });
      await eventually(() => firstStarted);
      await first.close(0);
      const reclaimed: { id: string; delivery: number }[] = [];
      const observed: number[] = [];
      await consume({
        group: 'reclaim',
        types: ['deployment:completed'],
        slot: 1,
        claimIdleMs: 600,
        observer: { reclaimed: (_g, _s, n) => void observed.push(n) },
        handler: async (e, ctx) => void reclaimed.push({ id: e.id, delivery: ctx.delivery.deliveryCount }),
      });
      await eventually(() => reclaimed.length === 1, 8000);
      expect(reclaimed[0]).toEqual({ id: event.id, delivery: 2 });
      expect(observed.reduce((a, b) => a + b, 0)).toBe(1);
    });

    it('keeps an entry whose handler runs longer than the claim idle time with the same consumer', async () => {
      await open();
      const runs: string[] = [];
      let finished = 0;
      const slow: Handler = async (_, ctx) => {
        runs.push(ctx.delivery.consumer);
        // More than three claim idle times: without renewals another consumer would take it.
        await new Promise((r) => setTimeout(r, 3000));
        finished++;
      };
      await consume({
        group: 'long',
        types: ['health:check:started'],
        // Generous enough that a loaded machine's event-loop lag does not look like a dead consumer.
        claimIdleMs: 900,
        handler: slow,
        slot: 0,
      });
      await consume({
        group: 'long',
        types: ['health:check:started'],
        // Generous enough that a loaded machine's event-loop lag does not look like a dead consumer.
        claimIdleMs: 900,
        handler: slow,
        slot: 1,
      });
      await bus.publisher.publish({ type: 'health:check:started', data: { deploymentId: 'd' } });
      await eventually(() => finished === 1, 8000);
      await new Promise((r) => setTimeout(r, 500));
      expect(runs).toHaveLength(1);
    });

    it('delivers a replay only to the group it is meant for', async () => {
      await open();
      const a: string[] = [];
      const b: string[] = [];
      await consume({
        group: 'replay-a',
        types: ['deployment:started'],
        handler: async (e) => void a.push(e.id),
      });
      await consume({
        group: 'replay-b',
        types: ['deployment:started'],
        handler: async (e) => void b.push(e.id),
      });
      const id = randomUUID();
      const fields = encodeEntry({
        id,
        type: 'deployment:started',
        source: 'test',
        time: new Date(),
        correlationId: 'c',
        causationId: '',
        deploymentId: 'd',
        priority: 'NORMAL',
        schema: 'materi.events.v1.DeploymentStartedEvent',
        contentType: 'application/json',
        data: create(DeploymentStartedEventSchema, { deploymentId: 'd' }),
      });
      const record: Record<string, string> = {};
      for (let i = 0; i < fields.length; i += 2) record[fields[i]!] = fields[i + 1]!;
      await bus.writeReplay('replay-a', record);
      await eventually(() => a.includes(id));
      await new Promise((r) => setTimeout(r, 300));
      expect(b).not.toContain(id);
    });

    it('finishes handlers in flight when closed within the grace period', async () => {
      await open();
      let finished = false;
      let started = false;
      const subscriber = bus.subscriber();
      const router = new Router({ subscriber, publisher: bus.publisher });
      router.addHandler({
        name: 'graceful',
        group: 'graceful',
        types: ['deployment:started'],
        handler: async () => {
          started = true;
          await new Promise((r) => setTimeout(r, 300));
          finished = true;
        },
      });
      await router.start();
      await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: 'd' } });
      await eventually(() => started);
      await router.close(5000);
      await subscriber.close(0);
      expect(finished).toBe(true);
      expect(await bus.pendingCount('deployment:started', 'graceful')).toBe(0);
    });

    if (features.multiProcess) {
      it('lets a consumer in a second subscriber pick up where the first left off', async () => {
        await open();
        const seen: string[] = [];
        const first = bus.subscriber();
        await consume({
          group: 'relay',
          types: ['deployment:started'],
          subscriber: first,
          handler: async (e) => void seen.push(e.id),
        });
        await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: 'one' } });
        await eventually(() => seen.length === 1);
        await first.close(0);
        await consume({
          group: 'relay',
          types: ['deployment:started'],
          slot: 1,
          handler: async (e) => void seen.push(e.id),
        });
        await bus.publisher.publish({ type: 'deployment:started', data: { deploymentId: 'two' } });
        await eventually(() => seen.length === 2);
      });
    }
  });
}

export type { Subscription };

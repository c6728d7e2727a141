import { hostname } from 'node:os';
import { describeCause } from '../../errors/index.js';
import { matchesEventPattern, PRIORITY_RANK, type PriorityName } from '../../events/catalog.js';
import { fieldsToRecord } from '../../events/codec.js';
import {
  DEFAULT_STREAM_PREFIX,
  deadLetterRegistryKey,
  deadLetterStreamKey,
  replayStreamKey,
  streamKey,
  streamRegistryKey,
} from '../../events/streams.js';
import { type Logger, silentLogger } from '../../runtime/logging.js';
import { type BackoffSettings, backoffDelay, DEFAULT_BACKOFF, sleep, stableRandom } from '../backoff.js';
import {
  consumerName,
  deadLetterFields,
  priorityOf,
  retryConsumerName,
  validateSubscriptionOptions,
} from '../consumers.js';
import type {
  Disposition,
  ProcessMessage,
  ReceivedMessage,
  Subscriber,
  Subscription,
  SubscriptionObserver,
  SubscriptionOptions,
} from '../types.js';
import {
  compareStreamIds,
  execPipelined,
  execPipelinedSettled,
  isCluster,
  openReaderConnection,
  type PipelineCommand,
  type RedisClient,
} from './connection.js';

/** Options of {@link RedisSubscriber}. */
export interface RedisSubscriberOptions {
  /** Command connection for acks, claims and inspection. Not closed by the subscriber. */
  client: RedisClient;
  /** @defaultValue `materi:events:deployment` */
  prefix?: string;
  logger?: Logger;
  /**
   * Longest BLOCK of an XREADGROUP, in ms: an idle subscription sends one read this often. Finite,
   * so a lost connection is noticed; a read is cut short (CLIENT UNBLOCK) when a new stream
   * appears or a retry falls due. @defaultValue 10000
   */
  blockMs?: number;
  /**
   * A read that has not answered `blockMs` (on a cluster: nothing) + this is presumed hung and its
   * connection replaced. @defaultValue 5000
   */
  watchdogGraceMs?: number;
  /**
   * Redis Cluster only: how long to wait after a round of reads found nothing new, in ms. A cluster
   * refuses a blocking read over streams in different hash slots, so each stream is read without
   * BLOCK and the streams are polled; a new entry waits up to this long (plus a round trip) to be
   * read, and an idle subscription sends one XREADGROUP per stream this often. A handler that
   * finishes ends the wait early. Ignored on a standalone Redis. @defaultValue 100
   */
  clusterPollMs?: number;
  /**
   * How often every stream of a subscription is swept for entries pending on its group (left by a
   * dead consumer, or parked for a retry by another process), in ms: one script call over all the
   * streams on a standalone Redis. Retries this process parked and streams a sweep found pending
   * are looked at when they fall due, not on this cadence. @defaultValue the subscription's
   * `claimIdleMs` (nothing of a dead consumer can be claimed sooner)
   */
  scanIntervalMs?: number;
  /**
   * How often the stream registry is read for new (per-stage) streams, in ms. Publishers also
   * announce a new stream on the registry's Pub/Sub channel, which starts a read at once; this is
   * the fallback for announcements missed while disconnected. @defaultValue 30000
   */
  discoveryIntervalMs?: number;
  /**
   * Consumers with nothing pending and idle this long are removed from the group; looked for every
   * `min(consumerCleanupIdleMs, 10 min)`. @defaultValue 3600000
   */
  consumerCleanupIdleMs?: number;
  /** Host part of consumer names. @defaultValue os.hostname() */
  hostname?: string;
}

/**
 * Consumer groups on Redis Streams, on a standalone Redis or a Redis Cluster.
 *
 * Each subscription reads with its own connection (never shared, never auto-pipelined): a
 * blocking read over all its streams on a standalone Redis, a polled non-blocking read per stream
 * on a cluster (see {@link RedisSubscriberOptions.clusterPollMs}). It drains its own pending list first, reads only as many entries as it has free slots, and
 * handles the most urgent first. Failed entries are parked on the group's `<group>@retry`
 * pseudo-consumer and claimed again once their backoff (from Redis' delivery counter) has
 * passed; entries of dead consumers are claimed after `claimIdleMs`. Both survive restarts,
 * because the state is in Redis, not in memory.
 */
export class RedisSubscriber implements Subscriber {
  readonly prefix: string;
  private readonly subscriptions = new Set<RedisSubscription>();
  /** Subscribed to the registries' channels once a subscription reads a pattern of types. */
  private announcements: RedisClient | undefined;

  constructor(private readonly options: RedisSubscriberOptions) {
    this.prefix = options.prefix ?? DEFAULT_STREAM_PREFIX;
    const poll = options.clusterPollMs;
    if (poll !== undefined && !(Number.isInteger(poll) && poll > 0)) {
      throw new RangeError(`RedisSubscriber: clusterPollMs must be a positive integer, got ${poll}`);
    }
  }

  async subscribe(
    options: SubscriptionOptions,
    process: ProcessMessage,
    observer: SubscriptionObserver = {},
  ): Promise<Subscription> {
    const subscription = new RedisSubscription(this.options, this.prefix, options, process, observer, () =>
      this.subscriptions.delete(subscription),
    );
    this.subscriptions.add(subscription);
    if (options.types.some((t) => t.includes('*'))) this.listenForNewStreams();
    await subscription.start();
    return subscription;
  }

  async close(graceMs?: number): Promise<void> {
    await Promise.all([...this.subscriptions].map((s) => s.close(graceMs)));
    this.announcements?.disconnect();
    this.announcements = undefined;
  }

  /**
   * Publishers announce each type they add to a registry on the registry key's Pub/Sub channel; the
   * subscriptions then read the registry at once instead of polling it often. Each time the
   * channels are (re)subscribed the registries are read once more, so nothing announced before that
   * is missed; what a dropped connection misses otherwise, the slow periodic discovery catches.
   * Subscribing does not hold up `subscribe()`.
   */
  private listenForNewStreams(): void {
    if (this.announcements) return;
    const connection = openReaderConnection(this.options.client, `materi:registry:${this.prefix}`);
    this.announcements = connection;
    const channels = [streamRegistryKey(this.prefix), deadLetterRegistryKey(this.prefix)];
    const rediscover = () => {
      for (const subscription of this.subscriptions) {
        for (const channel of channels) subscription.registryChanged(channel);
      }
    };
    connection.on('error', () => {});
    connection.on('message', (channel: string) => {
      for (const subscription of this.subscriptions) subscription.registryChanged(channel);
    });
    connection.on('ready', rediscover);
    connection
      .subscribe(...channels)
      .then(rediscover, (error: unknown) =>
        (this.options.logger ?? silentLogger()).warn(
          { err: error },
          'cannot listen for new streams; discovering them by polling only',
        ),
      );
  }
}

/**
 * An entry read or claimed by a subscription: queued, then in flight, then settled. It is also
 * the message the router gets, so handling one allocates little besides it.
 */
class Inbound implements ReceivedMessage {
  readonly group: string;
  readonly consumer: string;
  readonly signal: AbortSignal;
  readonly priority: PriorityName;
  /** Key in the in-flight map. */
  readonly key: string;
  /** When its claim was last renewed. */
  renewedAt = 0;

  constructor(
    private readonly owner: RedisSubscription,
    readonly stream: string,
    readonly entryId: string,
    readonly fields: Record<string, string>,
    readonly deliveryCount: number,
  ) {
    this.group = owner.group;
    this.consumer = owner.consumer;
    this.signal = owner.signal;
    this.priority = priorityOf(fields);
    this.key = `${stream}\u0000${entryId}`;
  }

  renewClaim(): Promise<void> {
    return this.owner.renew(this);
  }

  /** What a log line or a serializer shows: the delivery, not the subscription behind it. */
  toJSON(): Record<string, unknown> {
    const { stream, entryId, deliveryCount, group, consumer, priority } = this;
    return { stream, entryId, deliveryCount, group, consumer, priority };
  }
}

type RawEntry = [id: string, fields: string[] | null];

/** KEYS: streams; ARGV[1]: group. The 1-based indexes of the streams with entries pending on it. */
const PENDING_STREAMS = `
local found = {}
for i, key in ipairs(KEYS) do
  local ok, summary = pcall(redis.call, 'XPENDING', key, ARGV[1])
  if ok and summary[1] > 0 then found[#found + 1] = i end
end
return found
`;

/**
 * KEYS: streams; ARGV: group, consumers to keep (own and retry), idle ms. Deletes the group's other
 * consumers that have nothing pending and are idle that long, checked and deleted atomically.
 */
const DELETE_IDLE_CONSUMERS = `
local removed = 0
for _, key in ipairs(KEYS) do
  local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', key, ARGV[1])
  if ok then
    for _, c in ipairs(consumers) do
      local f = {}
      for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
      if f['name'] ~= ARGV[2] and f['name'] ~= ARGV[3] and tonumber(f['pending']) == 0
        and tonumber(f['idle']) >= tonumber(ARGV[4]) then
        redis.call('XGROUP', 'DELCONSUMER', key, ARGV[1], f['name'])
        removed = removed + 1
      end
    end
  end
end
return removed
`;

class RedisSubscription implements Subscription {
  readonly group: string;
  readonly consumer: string;
  private readonly retryConsumer: string;
  private readonly client: RedisClient;
  private readonly logger: Logger;
  private readonly concurrency: number;
  private readonly maxDeliveries: number;
  private readonly claimIdleMs: number;
  private readonly backoff: BackoffSettings;
  private readonly blockMs: number;
  private readonly watchdogMs: number;
  /** Streams in different hash slots: polled per stream instead of one blocking read. */
  private readonly onCluster: boolean;
  private readonly clusterPollMs: number;
  private readonly sweepIntervalMs: number;
  private readonly discoveryIntervalMs: number;
  private readonly cleanupIdleMs: number;
  private readonly readThreshold: number;
  /** Idle time below which no pending entry can be due (the shortest backoff, at most claimIdleMs). */
  private readonly minIdle: number;
  private readonly streams = new Set<string>();
  /**
   * Streams that may hold entries pending on the group, with the time they should be looked at:
   * retries this subscription parked, acknowledgements that failed, and what a sweep found. Only
   * these get an XPENDING between sweeps, so an idle subscription costs nothing per stream.
   */
  private readonly suspects = new Map<string, number>();
  private readonly queue: Inbound[] = [];
  /** Entries being handled, by `<stream>\u0000<entry id>`. */
  private readonly inFlightIds = new Map<string, Inbound>();
  /** Aborted when shutdown passes its grace period; every handler's signal. */
  private readonly shutdown = new AbortController();
  private renewalTimer: NodeJS.Timeout | undefined;
  private readonly pendingAcks = new Map<string, string[]>();
  /** Acknowledgements waiting for work that must be durable first (see deferAck). */
  private readonly beforeAck = new Set<Promise<void>>();
  /** The subscription's own connection for XREADGROUP (see {@link openReaderConnection}). */
  private reader!: RedisClient;
  private loopDone: Promise<void> = Promise.resolve();
  private stopping = false;
  private ackFlush: Promise<void> | undefined;
  private nextSweepAt = 0;
  private nextDiscoveryAt = 0;
  private discoveryRequested = false;
  private lastCleanup = Date.now();
  private readonly waiters = new Set<() => void>();
  /** CLIENT ID of the read connection (for CLIENT UNBLOCK); unknown after a reconnect until asked. */
  private readerId: number | undefined;
  /** Counts reads, so an interruption aimed at one read does not retry against the next one. */
  private readSeq = 0;
  /** Until when the loop is blocked reading or waiting; 0 while it is working. */
  private idleUntil = 0;
  private reading = false;
  private deadLettersAnnounced = false;
  private wakeTimer: NodeJS.Timeout | undefined;

  constructor(
    settings: RedisSubscriberOptions,
    private readonly prefix: string,
    private readonly options: SubscriptionOptions,
    private readonly process: ProcessMessage,
    private readonly observer: SubscriptionObserver,
    private readonly onClosed: () => void,
  ) {
    validateSubscriptionOptions(options);
    this.group = options.group;
    this.client = settings.client;
    this.consumer = consumerName(options.group, settings.hostname ?? hostname(), options.slot);
    this.retryConsumer = retryConsumerName(options.group);
    this.concurrency = options.concurrency ?? 1;
    this.maxDeliveries = options.maxDeliveries ?? 5;
    this.claimIdleMs = options.claimIdleMs ?? 30_000;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.blockMs = settings.blockMs ?? 10_000;
    this.onCluster = isCluster(settings.client);
    this.clusterPollMs = settings.clusterPollMs ?? 100;
    this.watchdogMs = (this.onCluster ? 0 : this.blockMs) + (settings.watchdogGraceMs ?? 5000);
    this.sweepIntervalMs = settings.scanIntervalMs ?? this.claimIdleMs;
    this.discoveryIntervalMs = settings.discoveryIntervalMs ?? 30_000;
    this.minIdle = Math.max(
      1,
      Math.min(Math.floor(this.backoff.baseMs * (1 - this.backoff.jitter)), this.claimIdleMs),
    );
    this.cleanupIdleMs = settings.consumerCleanupIdleMs ?? 3_600_000;
    this.readThreshold = Math.max(1, Math.ceil(this.concurrency / 4));
    this.logger = (settings.logger ?? silentLogger()).child({ group: this.group, consumer: this.consumer });
  }

  get inFlight(): number {
    return this.inFlightIds.size;
  }

  /** Aborted when shutdown passes its grace period; every handler's signal. */
  get signal(): AbortSignal {
    return this.shutdown.signal;
  }

  /** Resets an entry's idle time (XCLAIM … JUSTID), so no other consumer reclaims it. */
  async renew(entry: Inbound): Promise<void> {
    await this.client.call('XCLAIM', entry.stream, this.group, this.consumer, 0, entry.entryId, 'JUSTID');
    entry.renewedAt = Date.now();
  }

  async start(): Promise<void> {
    this.reader = openReaderConnection(this.client, `materi:read:${this.group}:${this.prefix}`);
    this.reader.on('error', (error) => this.logger.debug({ err: error }, 'read connection error'));
    this.reader.on('close', () => {
      this.readerId = undefined;
    });
    // `latest` applies to a new group only: a group that ran before (it has its replay stream)
    // reads the streams that appeared while it was down from their beginning.
    const replay = replayStreamKey(this.prefix, this.group);
    const isNew = !(await this.groupExists(replay));
    const initial = this.options.startFrom === 'latest' && isNew ? '$' : '0';
    await this.ensureGroup(replay, '0');
    for (const type of this.options.types) {
      if (!type.includes('*')) await this.ensureGroup(this.keyOf(type), initial);
    }
    await this.discover(initial);
    await this.drainOwnPending();
    this.loopDone = this.loop();
    const renewEvery = Math.max(50, Math.floor(this.claimIdleMs / 3));
    this.renewalTimer = setInterval(() => void this.renewClaims(renewEvery), renewEvery);
    this.renewalTimer.unref();
  }

  /**
   * Keeps the claims of slow but alive handlers fresh (XCLAIM … JUSTID resets the idle time
   * without counting a delivery), so no other consumer takes their entries. One timer for all.
   */
  private async renewClaims(olderThanMs: number): Promise<void> {
    const now = Date.now();
    const byStream = new Map<string, string[]>();
    for (const entry of this.inFlightIds.values()) {
      if (now - entry.renewedAt < olderThanMs) continue;
      entry.renewedAt = now;
      const ids = byStream.get(entry.stream);
      if (ids) ids.push(entry.entryId);
      else byStream.set(entry.stream, [entry.entryId]);
    }
    if (byStream.size === 0) return;
    const commands: PipelineCommand[] = [...byStream].map(([stream, ids]) => [
      'xclaim',
      stream,
      this.group,
      this.consumer,
      0,
      ...ids,
      'JUSTID',
    ]);
    await execPipelinedSettled(this.client, commands).catch((error) => this.observer.error?.(error, 'renew'));
  }

  async close(graceMs = 10_000): Promise<void> {
    if (this.stopping) return this.loopDone;
    this.stopping = true;
    this.wakeUp();
    // Interrupts a blocking read at once; the loop sees `stopping` and ends.
    this.reader.disconnect();
    await this.loopDone.catch(() => {});
    const deadline = Date.now() + graceMs;
    while (this.inFlightIds.size > 0 && Date.now() < deadline) await sleep(20);
    this.shutdown.abort(new Error('consumer is shutting down'));
    while (this.inFlightIds.size > 0 && Date.now() < deadline + 1000) await sleep(20);
    clearInterval(this.renewalTimer);
    clearTimeout(this.wakeTimer);
    // Acks waiting for deferred work get until the deadline too; what is still waiting then stays
    // pending and comes back (the idempotency marker, if it was written, skips the handler).
    const acksReady = new AbortController();
    void Promise.all(this.beforeAck).finally(() => acksReady.abort());
    await sleep(Math.max(0, deadline + 1000 - Date.now()), acksReady.signal);
    await this.flushAcks();
    this.onClosed();
    this.logger.debug({ left_pending: this.inFlightIds.size + this.queue.length }, 'subscription closed');
  }

  // ---------------------------------------------------------------------------------------------
  // Reading

  private async loop(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      try {
        const now = Date.now();
        if (this.discoveryRequested || now >= this.nextDiscoveryAt) await this.discover('0');
        if (now >= this.nextSweepAt) await this.sweep();
        if (this.nextSuspectAt() <= Date.now()) await this.scan();
        if (now - this.lastCleanup >= Math.min(this.cleanupIdleMs, 600_000)) await this.cleanupConsumers();
        this.dispatch();
        const free = this.concurrency - this.inFlightIds.size - this.queue.length;
        // Read in batches: while busy, wait until a quarter of the slots are free rather than
        // reading one entry per round trip as single slots free up.
        if (free <= 0 || (this.inFlightIds.size > 0 && free < this.readThreshold)) {
          // Due work needs a free slot too, so without one only a finishing handler ends the wait.
          const waitMs = free <= 0 ? this.blockMs : this.untilNextWork();
          await this.idleFor(waitMs, () => this.waitForSlot(waitMs));
          // Handlers finishing in the same tick free their slots together.
          await new Promise((resolve) => setImmediate(resolve));
          continue;
        }
        const entries = await this.readNew(free);
        if (entries.length > 0) this.enqueue(entries);
        this.dispatch();
        failures = 0;
      } catch (error) {
        if (this.stopping) break;
        failures++;
        if (/NOGROUP/.test(describeCause(error))) {
          this.logger.warn({ err: error }, 'consumer group vanished; creating it again');
          await this.recreateGroups().catch(() => {});
        } else {
          this.logger.warn({ err: error, failures }, 'reading the streams failed; retrying');
        }
        this.observer.error?.(error, 'read');
        await sleep(Math.min(2000, 50 * 2 ** Math.min(failures, 6)));
      }
    }
  }

  private async readNew(count: number): Promise<Inbound[]> {
    if (this.onCluster) return this.pollEachStream(count);
    this.readerId ??= Number(await this.watchdog(this.reader.call('CLIENT', 'ID')));
    const keys = [...this.streams];
    // Blocks until the next timed work (a sweep, a retry falling due), at most blockMs.
    const block = this.untilNextWork();
    const reply = await this.idleFor(block, () => {
      this.readSeq++;
      this.reading = true;
      const read = this.reader.call(
        'XREADGROUP',
        'GROUP',
        this.group,
        this.consumer,
        'COUNT',
        count,
        'BLOCK',
        block,
        'STREAMS',
        ...keys,
        ...keys.map(() => '>'),
      ) as Promise<[string, RawEntry[]][] | null>;
      return this.watchdog(read).finally(() => {
        this.reading = false;
      });
    });
    return this.fromReadReply(reply);
  }

  /** Milliseconds until the loop has timed work to do, between 1 and blockMs. */
  private untilNextWork(): number {
    const next = Math.min(this.nextSweepAt, this.nextDiscoveryAt, this.nextSuspectAt());
    return Math.max(1, Math.min(this.blockMs, next - Date.now()));
  }

  private nextSuspectAt(): number {
    let next = Number.POSITIVE_INFINITY;
    for (const due of this.suspects.values()) if (due < next) next = due;
    return next;
  }

  /** Runs a blocking read or wait, noting until when, so work falling due sooner can cut it short. */
  private async idleFor<T>(ms: number, wait: () => Promise<T>): Promise<T> {
    this.idleUntil = Date.now() + ms;
    try {
      return await wait();
    } finally {
      this.idleUntil = 0;
      clearTimeout(this.wakeTimer);
      this.wakeTimer = undefined;
    }
  }

  /** Makes the loop look at `stream` at `at`, interrupting a read or wait that would end later. */
  private schedule(stream: string, at: number): void {
    const due = this.suspects.get(stream);
    if (due === undefined || at < due) this.suspects.set(stream, at);
    this.wakeAt(at);
  }

  private wakeAt(at: number): void {
    if (this.idleUntil === 0 || at >= this.idleUntil - 5) return;
    clearTimeout(this.wakeTimer);
    this.wakeTimer = setTimeout(() => this.interruptRead(), Math.max(0, at - Date.now()));
    this.wakeTimer.unref();
  }

  /**
   * Ends the current blocking read early (CLIENT UNBLOCK answers it like a timeout) or the current
   * wait. An unblock that reaches Redis before the read it aims at is tried again shortly.
   */
  private interruptRead(attempt = 0): void {
    this.wakeUp();
    if (this.onCluster || !this.reading || this.readerId === undefined) return;
    const seq = this.readSeq;
    void (this.client.call('CLIENT', 'UNBLOCK', this.readerId) as Promise<number>).then(
      (unblocked) => {
        if (Number(unblocked) === 0 && attempt < 5 && seq === this.readSeq && this.reading) {
          setTimeout(() => this.interruptRead(attempt + 1), 10).unref();
        }
      },
      (error) => this.logger.debug({ err: error }, 'interrupting a read failed'),
    );
  }

  /** A publisher announced a new type on a registry's channel. */
  registryChanged(channel: string): void {
    const registry =
      this.options.source === 'dead-letters'
        ? deadLetterRegistryKey(this.prefix)
        : streamRegistryKey(this.prefix);
    if (channel !== registry || !this.options.types.some((t) => t.includes('*'))) return;
    this.discoveryRequested = true;
    this.interruptRead();
  }

  /**
   * Reading on a cluster. The streams of a subscription live in different hash slots, and a
   * multi-key XREADGROUP is refused there (CROSSSLOT), so a round reads every stream once, without
   * BLOCK, COUNT `count` each — what the multi-stream read returns too, so priority ordering over
   * the streams' backlogs and the free-slot bounding stay as they are. The reads of a round go out
   * together; the cluster client sends each to the node of its slot. A round that found nothing
   * waits `clusterPollMs`, or less when a handler frees a slot.
   */
  private async pollEachStream(count: number): Promise<Inbound[]> {
    const reads = [...this.streams].map(
      (stream) =>
        this.reader.call(
          'XREADGROUP',
          'GROUP',
          this.group,
          this.consumer,
          'COUNT',
          count,
          'STREAMS',
          stream,
          '>',
        ) as Promise<[string, RawEntry[]][] | null>,
    );
    const outcomes = await this.watchdog(Promise.allSettled(reads));
    const out: Inbound[] = [];
    let failure: unknown;
    for (const outcome of outcomes) {
      if (outcome.status === 'fulfilled') out.push(...this.fromReadReply(outcome.value));
      else failure ??= outcome.reason;
    }
    if (failure !== undefined) {
      // Entries the other reads returned are delivered to this consumer now: handle them rather
      // than leave them pending until claimIdleMs.
      this.enqueue(out);
      throw failure;
    }
    if (out.length === 0 && !this.stopping) await this.waitForSlot(this.clusterPollMs);
    return out;
  }

  /**
   * A read that outlives BLOCK (none on a cluster) by the grace time is presumed hung (a half-open
   * TCP connection after a network cut, a reconnect that never resent the command): its
   * connection is replaced so the loop carries on.
   */
  private async watchdog<T>(read: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.logger.warn({ timeout_ms: this.watchdogMs }, 'stream read hung; reconnecting');
        this.reader.disconnect(true);
        reject(new Error(`stream read did not answer within ${this.watchdogMs} ms`));
      }, this.watchdogMs);
    });
    read.catch(() => {});
    try {
      return await Promise.race([read, hung]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Entries this consumer name was given before a restart (a stable name, e.g. pid 1 in a
   * container) are handled before anything new is read.
   */
  private async drainOwnPending(): Promise<void> {
    for (;;) {
      let remaining = 0;
      for (const stream of this.streams) {
        const pending = (await this.client.call(
          'XPENDING',
          stream,
          this.group,
          '-',
          '+',
          100,
          this.consumer,
        )) as [string, string, number, number][];
        const waiting = pending.filter(([id]) => !this.inFlightIds.has(`${stream}\u0000${id}`));
        remaining += waiting.length;
        const free = this.concurrency - this.inFlightIds.size - this.queue.length;
        if (free <= 0 || waiting.length === 0) continue;
        const due = waiting.slice(0, free).map(([id, , , count]) => ({ id, count, minIdle: 0, retry: true }));
        this.logger.info({ stream, count: due.length }, 'resuming entries left pending by a previous run');
        await this.claim(stream, due);
        this.dispatch();
      }
      if (remaining === 0) return;
      await this.waitForSlot(1000);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Retries and dead consumers

  /** How long a parked retry waits after its `count`th delivery (the same for every consumer). */
  private retryDelay(stream: string, id: string, count: number): number {
    return backoffDelay(count, this.backoff, stableRandom(`${stream}/${id}/${count}`));
  }

  /**
   * Finds the streams with entries pending on the group, whoever holds them, and has them looked
   * at now. On a standalone Redis one script call covers every stream; on a cluster, where a
   * script cannot span hash slots, one XPENDING summary per stream goes out in pipelines.
   */
  private async sweep(): Promise<void> {
    this.nextSweepAt = Date.now() + this.sweepIntervalMs;
    const streams = [...this.streams];
    let pending: string[];
    if (this.onCluster) {
      const outcomes = await execPipelinedSettled(
        this.client,
        streams.map((stream): PipelineCommand => ['xpending', stream, this.group]),
      );
      pending = streams.filter((_, i) => {
        const [error, reply] = outcomes[i]!;
        return !error && Number((reply as [number])[0]) > 0;
      });
    } else {
      const found = (await this.client.eval(
        PENDING_STREAMS,
        streams.length,
        ...streams,
        this.group,
      )) as number[];
      pending = found.map((i) => streams[i - 1]!);
    }
    const now = Date.now();
    for (const stream of pending) this.schedule(stream, now);
  }

  /**
   * Looks at the streams that may hold due entries (see {@link suspects}): parked retries whose
   * backoff has passed, and entries of other consumers idle past `claimIdleMs` (the consumer died or
   * hung). XCLAIM's min-idle makes the claim atomic: when two consumers race, only one gets the
   * entry. A stream stays a suspect, due when its next entry is, while it holds entries of others;
   * entries younger than the shortest backoff are not listed, and the next sweep finds them.
   */
  private async scan(): Promise<void> {
    let free = this.concurrency - this.inFlightIds.size - this.queue.length;
    if (free <= 0) return;
    for (const [stream, dueAt] of [...this.suspects]) {
      if (free <= 0) break;
      const now = Date.now();
      if (dueAt > now) continue;
      const limit = Math.max(free * 4, 10);
      const pending = (await this.client.call(
        'XPENDING',
        stream,
        this.group,
        'IDLE',
        this.minIdle,
        '-',
        '+',
        limit,
      )) as [string, string, number, number][];
      const due: { id: string; count: number; minIdle: number; retry: boolean }[] = [];
      let next = pending.length >= limit ? now + this.minIdle : Number.POSITIVE_INFINITY;
      for (const [id, owner, idle, count] of pending) {
        if (owner === this.consumer && this.inFlightIds.has(`${stream}\u0000${id}`)) continue;
        const retry = owner === this.retryConsumer;
        const wait = retry ? this.retryDelay(stream, id, count) : this.claimIdleMs;
        if (idle >= wait) {
          due.push({ id, count, minIdle: wait, retry });
          if (due.length >= free) break;
        } else next = Math.min(next, now + wait - idle);
      }
      // After a claim, look again at once: there may be more than the free slots took.
      if (due.length > 0) next = now;
      if (next === Number.POSITIVE_INFINITY) this.suspects.delete(stream);
      else this.suspects.set(stream, next);
      if (due.length === 0) continue;
      free -= await this.claim(stream, due);
    }
  }

  private async claim(
    stream: string,
    due: { id: string; count: number; minIdle: number; retry: boolean }[],
  ): Promise<number> {
    const results = await execPipelinedSettled(
      this.client,
      due.map((d): PipelineCommand => ['xclaim', stream, this.group, this.consumer, d.minIdle, d.id]),
    );
    const found: Inbound[] = [];
    const vanished: string[] = [];
    let reclaimed = 0;
    results.forEach(([error, reply], i) => {
      const d = due[i]!;
      if (error) {
        this.observer.error?.(error, 'claim');
        return;
      }
      const entries = reply as RawEntry[];
      const entry = entries[0];
      if (!entry) {
        // Either someone else claimed it first (it is no longer idle enough), or the entry was
        // deleted/trimmed — Redis 7 then drops it from the pending list. Tell them apart later.
        vanished.push(d.id);
        return;
      }
      if (!entry[1]) {
        vanished.push(d.id);
        return;
      }
      if (!d.retry) reclaimed++;
      found.push(new Inbound(this, stream, entry[0], fieldsToRecord(entry[1]), d.count + 1));
    });
    if (vanished.length > 0) await this.settleVanished(stream, vanished);
    if (reclaimed > 0) {
      this.logger.info({ stream, count: reclaimed }, 'reclaimed entries left by a dead or stalled consumer');
      this.observer.reclaimed?.(this.group, stream, reclaimed);
    }
    this.enqueue(found);
    return found.length;
  }

  /** Entries XCLAIM did not return: acknowledged and counted when they no longer exist. */
  private async settleVanished(stream: string, ids: string[]): Promise<void> {
    const results = await execPipelinedSettled(
      this.client,
      ids.map((id): PipelineCommand => ['xrange', stream, id, id]),
    );
    const gone = ids.filter((_, i) => {
      const [error, reply] = results[i]!;
      return !error && (reply as unknown[]).length === 0;
    });
    if (gone.length === 0) return;
    await this.client.xack(stream, this.group, ...gone);
    this.logger.warn({ stream, count: gone.length }, 'pending entries were deleted or trimmed; acknowledged');
    this.observer.vanished?.(this.group, stream, gone.length);
  }

  // ---------------------------------------------------------------------------------------------
  // Handling

  private enqueue(entries: Inbound[]): void {
    if (entries.length === 0) return;
    this.queue.push(...entries);
    // Most urgent first; within a priority, oldest first (entry ids start with their time).
    if (this.queue.length > 1) this.queue.sort(byUrgency);
  }

  private dispatch(): void {
    while (this.queue.length > 0 && this.inFlightIds.size < this.concurrency && !this.stopping) {
      this.handle(this.queue.shift()!);
    }
  }

  /**
   * Runs one entry through the router and settles it. The common outcome (handled, acknowledged
   * with the next batch of acks) takes no promise of its own.
   */
  private handle(entry: Inbound): void {
    entry.renewedAt = Date.now();
    this.inFlightIds.set(entry.key, entry);
    const started = performance.now();
    this.observer.received?.(entry);
    let outcome: Promise<Disposition>;
    if (entry.deliveryCount > this.maxDeliveries) {
      outcome = Promise.resolve({
        kind: 'dead-letter',
        error: new Error(`delivered ${entry.deliveryCount - 1} times without success`),
        reason: 'max-deliveries',
      });
    } else {
      try {
        outcome = this.process(entry);
      } catch (error) {
        outcome = Promise.reject(error);
      }
    }
    outcome.then(
      (disposition) => this.finish(entry, disposition, started),
      (error) => this.finish(entry, { kind: 'retry', error }, started),
    );
  }

  private finish(entry: Inbound, disposition: Disposition, started: number): void {
    if (this.shutdown.signal.aborted) {
      // Cut short by shutdown: not a failure of the event. It stays pending for this consumer
      // and another one reclaims it after claimIdleMs, without spending a retry.
      this.logger.info({ stream: entry.stream, entry_id: entry.entryId }, 'left pending at shutdown');
      this.release(entry);
      return;
    }
    if (disposition.kind === 'ack') {
      const durationMs = performance.now() - started;
      this.release(entry);
      if (disposition.after) this.ackAfter(entry, disposition.after, durationMs);
      else {
        this.queueAck(entry.stream, entry.entryId);
        this.observer.acked?.(entry, durationMs);
      }
      return;
    }
    this.settle(entry, disposition)
      .catch((error) => {
        // The entry stays pending for this consumer; once it is no longer in flight here, the
        // scan treats it like any idle entry and it is delivered again.
        this.logger.error(
          { err: error, stream: entry.stream, entry_id: entry.entryId },
          'settling an entry failed',
        );
        this.observer.error?.(error, 'settle');
        this.schedule(entry.stream, Date.now() + this.claimIdleMs);
      })
      .finally(() => this.release(entry));
  }

  /** Acknowledges once `after` succeeded; until then the entry stays pending (see deferAck). */
  private ackAfter(entry: Inbound, after: Promise<void>, durationMs: number): void {
    const acked = after.then(
      () => {
        this.queueAck(entry.stream, entry.entryId);
        this.observer.acked?.(entry, durationMs);
      },
      (error) => {
        this.logger.warn(
          { err: error, stream: entry.stream, entry_id: entry.entryId },
          'work before the acknowledgement failed; the entry will be delivered again',
        );
        this.observer.error?.(error, 'ack');
        this.schedule(entry.stream, Date.now() + this.claimIdleMs);
      },
    );
    this.beforeAck.add(acked);
    void acked.finally(() => this.beforeAck.delete(acked));
  }

  private release(entry: Inbound): void {
    this.inFlightIds.delete(entry.key);
    this.wakeUp();
  }

  /** Retries and dead letters; acknowledgements are settled in {@link finish}. */
  private async settle(
    message: ReceivedMessage,
    disposition: Exclude<Disposition, { kind: 'ack' }>,
  ): Promise<void> {
    if (disposition.kind === 'retry' && message.deliveryCount < this.maxDeliveries) {
      // Parked on the retry pseudo-consumer with its idle time reset; the scan claims it again
      // once backoff(deliveryCount) has passed. No in-memory sleep, nothing lost on a crash.
      await this.client.call(
        'XCLAIM',
        message.stream,
        this.group,
        this.retryConsumer,
        0,
        message.entryId,
        'JUSTID',
      );
      this.logger.warn(
        {
          err: disposition.error,
          stream: message.stream,
          entry_id: message.entryId,
          delivery: message.deliveryCount,
        },
        'handler failed; will retry',
      );
      this.observer.retried?.(message, disposition.error);
      // A few ms late, so Redis' idle time has surely passed the backoff when the scan looks.
      const backoff = this.retryDelay(message.stream, message.entryId, message.deliveryCount);
      this.schedule(message.stream, Date.now() + backoff + 5);
      return;
    }
    const reason = disposition.kind === 'dead-letter' ? disposition.reason : 'max-deliveries';
    await this.deadLetter(message, disposition.error, reason);
    this.observer.deadLettered?.(message, disposition.error, reason);
  }

  /**
   * Writes the entry to `<prefix>:dlq:<group>` and acknowledges it: in one transaction on a
   * standalone Redis; on a cluster, where the three keys live in different hash slots and MULTI
   * cannot span them, one command after the other with the ack last (see below).
   */
  private async deadLetter(message: ReceivedMessage, error: unknown, reason: string): Promise<void> {
    const fields = deadLetterFields(message, error, reason);
    const dlq = deadLetterStreamKey(this.prefix, this.group);
    if (this.onCluster) {
      // Ordered so that a failure between two commands never loses the entry: until the XACK it
      // stays pending and is delivered again — and dead-lettered again (past maxDeliveries without
      // running the handler). A second dead-letter entry is harmless: the failed_events record is
      // an upsert keyed by group, source stream and entry id. The registry SADD (idempotent) goes
      // first, so the recorder knows the group's dead-letter stream before anything is in it, and
      // the XACK follows the XADD directly.
      await this.client.sadd(deadLetterRegistryKey(this.prefix), this.group);
      await this.client.xadd(dlq, '*', ...fields);
      await this.client.xack(message.stream, this.group, message.entryId);
      await this.announceDeadLetters();
    } else {
      const results = await this.client
        .multi()
        .xadd(dlq, '*', ...fields)
        .xack(message.stream, this.group, message.entryId)
        .sadd(deadLetterRegistryKey(this.prefix), this.group)
        .exec();
      const failed = results?.find(([e]) => e);
      if (!results || failed) throw failed?.[0] ?? new Error('dead-letter transaction was discarded');
      await this.announceDeadLetters();
    }
    this.logger.error(
      {
        stream: message.stream,
        entry_id: message.entryId,
        reason,
        attempts: message.deliveryCount,
        err: error,
      },
      'entry moved to the dead-letter stream',
    );
  }

  /** Tells dead-letter subscribers (the recorder) of the group's stream, once per subscription. */
  private async announceDeadLetters(): Promise<void> {
    if (this.deadLettersAnnounced) return;
    this.deadLettersAnnounced = true;
    await this.client.publish(deadLetterRegistryKey(this.prefix), this.group).catch(() => {});
  }

  private queueAck(stream: string, id: string): void {
    const ids = this.pendingAcks.get(stream);
    if (ids) ids.push(id);
    else this.pendingAcks.set(stream, [id]);
    // Acks of entries finished in the same tick go out in one pipeline.
    if (!this.ackFlush) {
      this.ackFlush = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flushAcks());
    }
  }

  private async flushAcks(): Promise<void> {
    this.ackFlush = undefined;
    if (this.pendingAcks.size === 0) return;
    const batch = [...this.pendingAcks];
    this.pendingAcks.clear();
    try {
      // One pipeline on a standalone Redis; one per stream's slot on a cluster.
      await execPipelined(
        this.client,
        batch.map(([stream, ids]): PipelineCommand => ['xack', stream, this.group, ...ids]),
      );
    } catch (error) {
      // Not acknowledged: the entries stay pending and come back after claimIdleMs; the
      // idempotency middleware keeps a second delivery from repeating side effects.
      this.logger.warn({ err: error }, 'acknowledging entries failed; they will be delivered again');
      this.observer.error?.(error, 'ack');
      for (const [stream] of batch) this.schedule(stream, Date.now() + this.claimIdleMs);
    }
  }

  /** Resolves when a handler finishes (a slot frees up) or after `timeoutMs`. */
  private waitForSlot(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(wake, timeoutMs);
      const waiters = this.waiters;
      waiters.add(wake);
      function wake() {
        clearTimeout(timer);
        waiters.delete(wake);
        resolve();
      }
    });
  }

  private wakeUp(): void {
    if (this.waiters.size === 0) return;
    for (const wake of [...this.waiters]) wake();
  }

  // ---------------------------------------------------------------------------------------------
  // Groups and streams

  private async groupExists(stream: string): Promise<boolean> {
    try {
      const groups = (await this.client.call('XINFO', 'GROUPS', stream)) as unknown[][];
      return groups.some((fields) => fields[fields.indexOf('name') + 1] === this.group);
    } catch (error) {
      if (/no such key/i.test(describeCause(error))) return false;
      throw error;
    }
  }

  private async ensureGroup(stream: string, start: string): Promise<void> {
    try {
      await this.client.xgroup('CREATE', stream, this.group, start, 'MKSTREAM');
    } catch (error) {
      if (!/BUSYGROUP/.test(describeCause(error))) throw error;
    }
    this.streams.add(stream);
  }

  /** Stream key of a subscribed name: an event type, or a group for dead-letter subscriptions. */
  private keyOf(name: string): string {
    return this.options.source === 'dead-letters'
      ? deadLetterStreamKey(this.prefix, name)
      : streamKey(this.prefix, name);
  }

  private async recreateGroups(): Promise<void> {
    for (const stream of this.streams) await this.ensureGroup(stream, '0');
  }

  /** Adds the streams of newly published types (e.g. a stage that appeared) that match. */
  private async discover(start: string): Promise<void> {
    this.discoveryRequested = false;
    const patterns = this.options.types.filter((t) => t.includes('*'));
    this.nextDiscoveryAt =
      patterns.length === 0 ? Number.POSITIVE_INFINITY : Date.now() + this.discoveryIntervalMs;
    if (patterns.length === 0) return;
    const deadLetters = this.options.source === 'dead-letters';
    const registry = deadLetters ? deadLetterRegistryKey(this.prefix) : streamRegistryKey(this.prefix);
    const types = await this.client.smembers(registry);
    for (const type of types) {
      const key = this.keyOf(type);
      if (!this.streams.has(key) && patterns.some((p) => matchesEventPattern(p, type))) {
        await this.ensureGroup(key, start);
        this.logger.debug({ stream: key }, 'discovered stream');
      }
    }
  }

  private fromReadReply(reply: [string, RawEntry[]][] | null): Inbound[] {
    const out: Inbound[] = [];
    for (const [stream, entries] of reply ?? []) {
      for (const [entryId, fields] of entries) {
        if (fields) out.push(new Inbound(this, stream, entryId, fieldsToRecord(fields), 1));
      }
    }
    return out;
  }

  /** Removes consumers that left nothing pending and have been idle long (restarted processes). */
  private async cleanupConsumers(): Promise<void> {
    this.lastCleanup = Date.now();
    if (!this.onCluster) {
      const streams = [...this.streams];
      const removed = await this.client.eval(
        DELETE_IDLE_CONSUMERS,
        streams.length,
        ...streams,
        this.group,
        this.consumer,
        this.retryConsumer,
        this.cleanupIdleMs,
      );
      if (Number(removed) > 0) this.logger.debug({ removed }, 'removed idle consumers');
      return;
    }
    for (const stream of this.streams) {
      const consumers = (await this.client.xinfo('CONSUMERS', stream, this.group)) as unknown[][];
      for (const raw of consumers) {
        const info = fieldsToRecord(raw.map(String));
        if (
          info.name !== this.consumer &&
          info.name !== this.retryConsumer &&
          Number(info.pending) === 0 &&
          Number(info.idle) >= this.cleanupIdleMs
        ) {
          await this.client.xgroup('DELCONSUMER', stream, this.group, info.name!);
          this.logger.debug({ stream, removed: info.name }, 'removed idle consumer');
        }
      }
    }
  }
}

/** Most urgent first; within a priority, oldest first. */
function byUrgency(a: Inbound, b: Inbound): number {
  return PRIORITY_RANK[b.priority] - PRIORITY_RANK[a.priority] || compareStreamIds(a.entryId, b.entryId);
}

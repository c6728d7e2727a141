import { hostname } from 'node:os';
import { matchesEventPattern, PRIORITY_RANK, type PriorityName } from '../../events/catalog.js';
import { fieldsToRecord } from '../../events/codec.js';
import {
  DEFAULT_STREAM_PREFIX,
  deadLetterStreamKey,
  replayStreamKey,
  streamKey,
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
import { parseFields, type SqliteBusDatabase } from './database.js';

/** Options of {@link SqliteSubscriber}. */
export interface SqliteSubscriberOptions {
  /** The bus connection. Not closed by the subscriber. */
  database: SqliteBusDatabase;
  /** @defaultValue `materi:events:deployment` */
  prefix?: string;
  logger?: Logger;
  /** How often due retries and entries of dead consumers are looked for, in ms. @defaultValue 500 */
  scanIntervalMs?: number;
  /**
   * How often the stream registry is read for new (per-stage) streams, in ms. Streams registered
   * through the same connection, or seen by its poll, are picked up at once. @defaultValue 1000
   */
  discoveryIntervalMs?: number;
  /** Consumers with nothing pending and idle this long are forgotten. @defaultValue 3600000 */
  consumerCleanupIdleMs?: number;
  /** Host part of consumer names. @defaultValue os.hostname() */
  hostname?: string;
}

/** How often a consumer records that it is alive (`bus_consumers`, for inspection), in ms. */
const HEARTBEAT_MS = 5000;

/**
 * Consumer groups on the embedded bus, with the semantics of the Redis backend: consumer names
 * `<group>:<host>:<pid>:<slot>`, own pending entries drained first, only as many entries read as
 * there are free slots, the most urgent of them handled first, failed entries parked on
 * `<group>@retry` and taken again after backoff(delivery count), entries of dead consumers taken
 * over after `claimIdleMs`, claims renewed while handlers run, dead-lettering written in one
 * transaction with the ack. All of it is state in the file, shared by every process that opens it,
 * so it survives restarts. Claims are compare-and-set updates, so of two processes racing for an
 * entry only one gets it.
 */
export class SqliteSubscriber implements Subscriber {
  readonly prefix: string;
  private readonly subscriptions = new Set<SqliteSubscription>();

  constructor(private readonly options: SqliteSubscriberOptions) {
    this.prefix = options.prefix ?? DEFAULT_STREAM_PREFIX;
    for (const name of ['scanIntervalMs', 'discoveryIntervalMs', 'consumerCleanupIdleMs'] as const) {
      const value = options[name];
      if (value !== undefined && !(Number.isInteger(value) && value > 0)) {
        throw new RangeError(`${name} must be a positive integer, got ${value}`);
      }
    }
  }

  async subscribe(
    options: SubscriptionOptions,
    process: ProcessMessage,
    observer: SubscriptionObserver = {},
  ): Promise<Subscription> {
    const subscription = new SqliteSubscription(this.options, this.prefix, options, process, observer, () =>
      this.subscriptions.delete(subscription),
    );
    this.subscriptions.add(subscription);
    try {
      await subscription.start();
    } catch (error) {
      await subscription.close(0);
      throw error;
    }
    return subscription;
  }

  async close(graceMs?: number): Promise<void> {
    await Promise.all([...this.subscriptions].map((s) => s.close(graceMs)));
  }
}

interface Queued {
  seq: number;
  stream: string;
  entryId: string;
  fields: Record<string, string>;
  deliveryCount: number;
  priority: PriorityName;
}

interface PendingRow {
  stream: string;
  seq: number;
  entry_id: string;
  consumer: string;
  delivery_count: number;
  delivered_ms: number;
}

interface RawEntry {
  seq: number;
  entry_id: string;
  fields: string;
}

/** The entries a read found on one stream, in order; `next` is the first not taken yet. */
interface Head {
  stream: string;
  rows: RawEntry[];
  /** Rows decoded so far: only those that reached the head of their stream are. */
  parsed: Queued[];
  next: number;
}

function headEntry(head: Head): Queued {
  let entry = head.parsed[head.next];
  if (!entry) {
    const row = head.rows[head.next]!;
    const fields = parseFields(row.fields);
    entry = {
      seq: row.seq,
      stream: head.stream,
      entryId: row.entry_id,
      fields,
      deliveryCount: 1,
      priority: priorityOf(fields),
    };
    head.parsed[head.next] = entry;
  }
  return entry;
}

/** Most urgent first; within a priority, oldest first. */
function moreUrgent(a: Queued, b: Queued): boolean {
  const rank = PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority];
  return rank > 0 || (rank === 0 && a.seq < b.seq);
}

class SqliteSubscription implements Subscription {
  readonly group: string;
  readonly consumer: string;
  private readonly retryConsumer: string;
  private readonly database: SqliteBusDatabase;
  private readonly logger: Logger;
  private readonly concurrency: number;
  private readonly maxDeliveries: number;
  private readonly claimIdleMs: number;
  private readonly backoff: BackoffSettings;
  private readonly scanIntervalMs: number;
  private readonly discoveryIntervalMs: number;
  private readonly cleanupIdleMs: number;
  private readonly readThreshold: number;
  private readonly patterns: string[];
  private readonly dlqStream: string;
  private readonly streams = new Set<string>();
  private readonly queue: Queued[] = [];
  /**
   * Entries this subscription holds — queued, being handled, or being settled — by seq, with when
   * their claim was last renewed. An entry stays here until its ack (or retry parking) is committed,
   * so a scan never mistakes it for an abandoned one.
   */
  private readonly held = new Map<number, { renewedAt: number }>();
  private running = 0;
  private readonly settling = new Set<Promise<void>>();
  /** Aborted when shutdown passes its grace period; every handler's signal. */
  private readonly shutdown = new AbortController();
  private renewalTimer: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private loopDone: Promise<void> = Promise.resolve();
  private closing: Promise<void> | undefined;
  private stopping = false;
  /** Entries up to this seq have been looked at; nothing to read until the bus knows of a newer one. */
  private caughtUpTo = 0;
  private lastScan = 0;
  /** When parked retries of this subscription fall due, so the scan runs then rather than on the interval. */
  private retryDue: number[] = [];
  private lastDiscovery = 0;
  private seenRegistryVersion = -1;
  private lastCleanup = Date.now();
  private lastHeartbeat = 0;
  private waiter: (() => void) | undefined;
  /** Whether the loop waits for new entries (has free slots), so the notifier should wake it. */
  private wantsEntries = false;

  constructor(
    settings: SqliteSubscriberOptions,
    private readonly prefix: string,
    private readonly options: SubscriptionOptions,
    private readonly process: ProcessMessage,
    private readonly observer: SubscriptionObserver,
    private readonly onClosed: () => void,
  ) {
    validateSubscriptionOptions(options);
    this.group = options.group;
    this.database = settings.database;
    this.consumer = consumerName(options.group, settings.hostname ?? hostname(), options.slot);
    this.retryConsumer = retryConsumerName(options.group);
    this.concurrency = options.concurrency ?? 1;
    this.maxDeliveries = options.maxDeliveries ?? 5;
    this.claimIdleMs = options.claimIdleMs ?? 30_000;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.scanIntervalMs = settings.scanIntervalMs ?? 500;
    this.discoveryIntervalMs = settings.discoveryIntervalMs ?? 1000;
    this.cleanupIdleMs = settings.consumerCleanupIdleMs ?? 3_600_000;
    this.readThreshold = Math.max(1, Math.ceil(this.concurrency / 4));
    this.patterns = options.types.filter((t) => t.includes('*'));
    this.dlqStream = deadLetterStreamKey(prefix, options.group);
    this.logger = (settings.logger ?? silentLogger()).child({ group: this.group, consumer: this.consumer });
  }

  get inFlight(): number {
    return this.running;
  }

  async start(): Promise<void> {
    // `latest` applies to a new group only: a group that ran before (it has its replay stream)
    // reads the streams that appeared while it was down from their beginning.
    const replay = replayStreamKey(this.prefix, this.group);
    const isNew =
      this.database
        .scalar('SELECT 1 FROM bus_groups WHERE group_name = ? AND stream = ?')
        .get(this.group, replay) === undefined;
    const from = this.options.startFrom === 'latest' && isNew ? 'latest' : 'beginning';
    this.database.immediate(() => {
      this.ensureGroup(replay, 'beginning');
      for (const name of this.options.types) {
        if (!name.includes('*')) this.ensureGroup(this.keyOf(name), from);
      }
    });
    this.discover(from);
    this.unwatch = this.database.watch(() => {
      if (this.wantsEntries) this.wakeUp();
    });
    this.heartbeat(Date.now());
    const renewEvery = Math.max(50, Math.floor(this.claimIdleMs / 3));
    this.renewalTimer = setInterval(() => this.renewClaims(renewEvery), renewEvery);
    this.renewalTimer.unref();
    await this.drainOwnPending();
    if (!this.stopping) this.loopDone = this.loop();
  }

  close(graceMs = 10_000): Promise<void> {
    this.closing ??= this.stop(graceMs);
    return this.closing;
  }

  private async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.wakeUp();
    await this.loopDone.catch(() => {});
    const deadline = Date.now() + graceMs;
    while (this.running > 0 && Date.now() < deadline) await sleep(20);
    this.shutdown.abort(new Error('consumer is shutting down'));
    while (this.running > 0 && Date.now() < deadline + 1000) await sleep(20);
    clearInterval(this.renewalTimer);
    this.unwatch?.();
    // Settling includes acks waiting for deferred work (deferAck): bounded by the deadline too.
    const settled = new AbortController();
    void Promise.allSettled([...this.settling]).finally(() => settled.abort());
    await sleep(Math.max(0, deadline + 1000 - Date.now()), settled.signal);
    this.onClosed();
    this.logger.debug({ left_pending: this.held.size }, 'subscription closed');
  }

  // ---------------------------------------------------------------------------------------------
  // Reading

  private async loop(): Promise<void> {
    let failures = 0;
    // A bus closed under a running subscription (its owner forgot to close it first) ends the loop
    // instead of failing every read.
    while (!this.stopping && !this.database.isClosed) {
      try {
        const now = Date.now();
        if (
          this.patterns.length > 0 &&
          (now - this.lastDiscovery >= this.discoveryIntervalMs ||
            this.database.registryVersion !== this.seenRegistryVersion)
        ) {
          this.discover('beginning');
        }
        if (now >= this.nextScanAt()) this.scan(now);
        if (now - this.lastCleanup >= Math.min(this.cleanupIdleMs, 60_000)) this.cleanupConsumers(now);
        if (now - this.lastHeartbeat >= HEARTBEAT_MS) this.heartbeat(now);
        this.dispatch();
        const free = this.concurrency - this.running - this.queue.length;
        // Read in batches: while busy, wait until a quarter of the slots are free rather than
        // reading one entry per transaction as single slots free up.
        const room = free > 0 && !(this.running > 0 && free < this.readThreshold);
        failures = 0;
        if (room && this.database.latestSeq > this.caughtUpTo) {
          this.readNew(free);
          this.dispatch();
          await new Promise((resolve) => setImmediate(resolve));
          continue;
        }
        this.wantsEntries = room;
        await this.wait(this.nextWakeAt() - Date.now());
        this.wantsEntries = false;
        // Handlers finishing in the same tick free their slots together.
        if (!room) await new Promise((resolve) => setImmediate(resolve));
      } catch (error) {
        this.wantsEntries = false;
        if (this.stopping) break;
        failures++;
        this.logger.warn({ err: error, failures }, 'reading the embedded bus failed; retrying');
        this.observer.error?.(error, 'read');
        await sleep(Math.min(2000, 50 * 2 ** Math.min(failures, 6)));
      }
    }
  }

  private nextScanAt(): number {
    let next = this.lastScan + this.scanIntervalMs;
    for (const due of this.retryDue) if (due < next) next = due;
    return next;
  }

  private nextWakeAt(): number {
    let next = Math.min(
      this.nextScanAt(),
      this.lastHeartbeat + HEARTBEAT_MS,
      this.lastCleanup + Math.min(this.cleanupIdleMs, 60_000),
    );
    if (this.patterns.length > 0) next = Math.min(next, this.lastDiscovery + this.discoveryIntervalMs);
    return next;
  }

  /**
   * Reads up to `count` new entries across the subscription's streams in one write transaction:
   * advances the group's cursors and records the entries as pending for this consumer. Of the
   * entries waiting, it takes the most urgent ones it can without skipping over an older entry of
   * the same stream (a group's cursor only moves forward).
   */
  private readNew(count: number): void {
    const known = this.database.latestSeq;
    const now = Date.now();
    const cursorOf = this.database.scalar(
      'SELECT last_delivered_seq FROM bus_groups WHERE group_name = ? AND stream = ?',
    );
    const after = this.database.statement(
      'SELECT seq, entry_id, fields FROM bus_entries WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?',
    );
    const advance = this.database.statement(
      'UPDATE bus_groups SET last_delivered_seq = ?, last_delivered_id = ? WHERE group_name = ? AND stream = ?',
    );
    const deliver = this.database.statement(
      `INSERT INTO bus_pending (group_name, seq, stream, entry_id, consumer, delivery_count, delivered_ms)
       VALUES (?, ?, ?, ?, ?, 1, ?) ON CONFLICT DO NOTHING`,
    );
    const { taken, exhausted, newest } = this.database.immediate(() => {
      const heads: Head[] = [];
      let exhausted = true;
      for (const stream of this.streams) {
        let cursor = cursorOf.get(this.group, stream) as number | undefined;
        if (cursor === undefined) {
          // Someone deleted the group: like Redis' NOGROUP, create it again from the start.
          this.logger.warn({ stream }, 'consumer group vanished; creating it again');
          this.ensureGroup(stream, 'beginning');
          cursor = 0;
        }
        const rows = after.all(stream, cursor, count) as RawEntry[];
        if (rows.length === count) exhausted = false;
        if (rows.length > 0) heads.push({ stream, rows, parsed: [], next: 0 });
      }
      const taken: Queued[] = [];
      while (taken.length < count) {
        let best: Head | undefined;
        for (const head of heads) {
          if (head.next >= head.rows.length) continue;
          if (!best || moreUrgent(headEntry(head), headEntry(best))) best = head;
        }
        if (!best) break;
        taken.push(headEntry(best));
        best.next++;
      }
      for (const head of heads) {
        if (head.next < head.rows.length) exhausted = false;
        if (head.next === 0) continue;
        const last = head.rows[head.next - 1]!;
        advance.run(last.seq, last.entry_id, this.group, head.stream);
      }
      const delivered = taken.filter(
        (q) => deliver.run(this.group, q.seq, q.stream, q.entryId, this.consumer, now).changes > 0,
      );
      return { taken: delivered, exhausted, newest: this.database.currentSeq() };
    });
    if (exhausted) this.caughtUpTo = Math.max(known, newest);
    this.enqueue(taken);
  }

  /**
   * Entries this consumer name was given before a restart (a stable name, e.g. pid 1 in a
   * container) are handled before anything new is read.
   */
  private async drainOwnPending(): Promise<void> {
    const own = this.database.statement(
      `SELECT stream, seq, entry_id, consumer, delivery_count, delivered_ms FROM bus_pending
        WHERE group_name = ? AND consumer = ? ORDER BY seq LIMIT ?`,
    );
    while (!this.stopping) {
      const rows = own.all(this.group, this.consumer, this.held.size + 100) as PendingRow[];
      const waiting = rows.filter((r) => this.streams.has(r.stream) && !this.held.has(r.seq));
      if (waiting.length === 0) return;
      const free = this.concurrency - this.running - this.queue.length;
      if (free > 0) {
        this.logger.info(
          { count: Math.min(free, waiting.length) },
          'resuming entries left pending by a previous run',
        );
        this.claim(
          waiting.slice(0, free).map((r) => ({ ...r, retry: true })),
          Date.now(),
        );
        this.dispatch();
      }
      await this.wait(1000);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Retries and dead consumers

  /**
   * Looks for entries that are due: parked retries whose backoff has passed, and entries of
   * consumers idle past `claimIdleMs` (the consumer died or hung). Reading them needs no lock; the
   * claim is a compare-and-set on (consumer, delivered_ms) in a write transaction.
   */
  private scan(now: number): void {
    this.lastScan = now;
    this.retryDue = this.retryDue.filter((due) => due > now);
    const free = this.concurrency - this.running - this.queue.length;
    if (free <= 0) return;
    const limit = Math.max(free * 4, 10);
    // A lower bound of each entry's backoff in SQL keeps retries that are far from due out of the
    // LIMIT; the exact, jittered delay is checked below, as every process computes it.
    const retries = this.database
      .statement(
        `SELECT stream, seq, entry_id, consumer, delivery_count, delivered_ms FROM bus_pending
          WHERE group_name = @group AND consumer = @retry
            AND delivered_ms + @low * min(@maxMs, @baseMs * (1 << min(max(delivery_count - 1, 0), 30))) <= @now
          ORDER BY seq LIMIT @limit`,
      )
      .all({
        group: this.group,
        retry: this.retryConsumer,
        low: 1 - this.backoff.jitter,
        maxMs: this.backoff.maxMs,
        baseMs: this.backoff.baseMs,
        now,
        limit,
      }) as PendingRow[];
    const abandoned = this.abandonedEntries(now - this.claimIdleMs, limit + this.held.size);
    const due: (PendingRow & { retry: boolean })[] = [];
    for (const row of retries) {
      if (due.length >= free) break;
      if (!this.streams.has(row.stream) || this.held.has(row.seq)) continue;
      const wait = backoffDelay(
        row.delivery_count,
        this.backoff,
        stableRandom(`${row.stream}/${row.entry_id}/${row.delivery_count}`),
      );
      if (now - row.delivered_ms >= wait) due.push({ ...row, retry: true });
    }
    for (const row of abandoned) {
      if (due.length >= free) break;
      if (!this.streams.has(row.stream) || this.held.has(row.seq)) continue;
      due.push({ ...row, retry: false });
    }
    if (due.length > 0) this.claim(due, now);
  }

  /**
   * Entries of the group's consumers (this one included, for entries it no longer holds) delivered
   * at or before `deliveredBefore`, oldest first. Walks the consumers one by one on the
   * (group, consumer, delivered_ms) index: a few index seeks, however long the pending list.
   */
  private abandonedEntries(deliveredBefore: number, limit: number): PendingRow[] {
    const nextConsumer = this.database.scalar(
      'SELECT consumer FROM bus_pending WHERE group_name = ? AND consumer > ? ORDER BY consumer LIMIT 1',
    );
    const idleOf = this.database.statement(
      `SELECT stream, seq, entry_id, consumer, delivery_count, delivered_ms FROM bus_pending
        WHERE group_name = ? AND consumer = ? AND delivered_ms <= ? ORDER BY delivered_ms LIMIT ?`,
    );
    const found: PendingRow[] = [];
    let after = '';
    for (;;) {
      const consumer = nextConsumer.get(this.group, after) as string | undefined;
      if (consumer === undefined) break;
      after = consumer;
      if (consumer === this.retryConsumer) continue;
      found.push(...(idleOf.all(this.group, consumer, deliveredBefore, limit) as PendingRow[]));
    }
    return found.sort((a, b) => a.delivered_ms - b.delivered_ms).slice(0, limit);
  }

  /**
   * Takes entries over for this consumer, counting a delivery. The update only applies while the
   * entry still has the owner and delivery time it was seen with, so when several consumers race
   * only one wins. Entries whose rows were trimmed or deleted are acknowledged and counted.
   */
  private claim(due: (PendingRow & { retry: boolean })[], now: number): void {
    const take = this.database.statement(
      `UPDATE bus_pending SET consumer = ?, delivery_count = delivery_count + 1, delivered_ms = ?
        WHERE group_name = ? AND seq = ? AND consumer = ? AND delivered_ms = ?`,
    );
    const entry = this.database.scalar('SELECT fields FROM bus_entries WHERE seq = ?');
    const forget = this.database.statement('DELETE FROM bus_pending WHERE group_name = ? AND seq = ?');
    const vanished = new Map<string, number>();
    const reclaimed = new Map<string, number>();
    const found = this.database.immediate(() => {
      const found: Queued[] = [];
      for (const d of due) {
        if (take.run(this.consumer, now, this.group, d.seq, d.consumer, d.delivered_ms).changes === 0)
          continue;
        const text = entry.get(d.seq) as string | undefined;
        if (text === undefined) {
          forget.run(this.group, d.seq);
          vanished.set(d.stream, (vanished.get(d.stream) ?? 0) + 1);
          continue;
        }
        if (!d.retry) reclaimed.set(d.stream, (reclaimed.get(d.stream) ?? 0) + 1);
        const fields = parseFields(text);
        found.push({
          seq: d.seq,
          stream: d.stream,
          entryId: d.entry_id,
          fields,
          deliveryCount: d.delivery_count + 1,
          priority: priorityOf(fields),
        });
      }
      return found;
    });
    for (const [stream, count] of reclaimed) {
      this.logger.info({ stream, count }, 'reclaimed entries left by a dead or stalled consumer');
      this.observer.reclaimed?.(this.group, stream, count);
    }
    for (const [stream, count] of vanished) {
      this.logger.warn({ stream, count }, 'pending entries were deleted or trimmed; acknowledged');
      this.observer.vanished?.(this.group, stream, count);
    }
    this.enqueue(found);
  }

  /**
   * Keeps the claims of slow but alive handlers (and of entries waiting in the queue) fresh, so no
   * other consumer takes them. One timer for all; only entries still owned by this consumer.
   */
  private renewClaims(olderThanMs: number): void {
    const now = Date.now();
    const stale: number[] = [];
    for (const [seq, held] of this.held) if (now - held.renewedAt >= olderThanMs) stale.push(seq);
    if (stale.length > 0) this.renew(stale).catch((error) => this.observer.error?.(error, 'renew'));
  }

  private async renew(seqs: readonly number[]): Promise<void> {
    const now = Date.now();
    for (const seq of seqs) {
      const held = this.held.get(seq);
      if (held) held.renewedAt = now;
    }
    const touch = this.database.statement(
      'UPDATE bus_pending SET delivered_ms = ? WHERE group_name = ? AND seq = ? AND consumer = ?',
    );
    await this.database.write(() => {
      for (const seq of seqs) touch.run(now, this.group, seq, this.consumer);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Handling

  private enqueue(entries: Queued[]): void {
    if (entries.length === 0) return;
    const now = Date.now();
    for (const entry of entries) this.held.set(entry.seq, { renewedAt: now });
    this.queue.push(...entries);
    this.queue.sort((a, b) => PRIORITY_RANK[b.priority] - PRIORITY_RANK[a.priority] || a.seq - b.seq);
  }

  private dispatch(): void {
    while (this.queue.length > 0 && this.running < this.concurrency && !this.stopping) {
      void this.handle(this.queue.shift()!);
    }
  }

  private async handle(entry: Queued): Promise<void> {
    this.running++;
    const message: ReceivedMessage = {
      stream: entry.stream,
      entryId: entry.entryId,
      deliveryCount: entry.deliveryCount,
      group: this.group,
      consumer: this.consumer,
      fields: entry.fields,
      priority: entry.priority,
      renewClaim: () => this.renew([entry.seq]),
      signal: this.shutdown.signal,
    };
    const started = performance.now();
    this.observer.received?.(message);
    let disposition: Disposition;
    try {
      disposition =
        entry.deliveryCount > this.maxDeliveries
          ? {
              kind: 'dead-letter',
              error: new Error(`delivered ${entry.deliveryCount - 1} times without success`),
              reason: 'max-deliveries',
            }
          : await this.process(message);
    } catch (error) {
      disposition = { kind: 'retry', error };
    }
    let settled: Promise<void> | undefined;
    if (this.shutdown.signal.aborted) {
      // Cut short by shutdown: not a failure of the event. It stays pending for this consumer and
      // another one reclaims it after claimIdleMs, without spending a retry.
      this.logger.info({ stream: entry.stream, entry_id: entry.entryId }, 'left pending at shutdown');
      this.held.delete(entry.seq);
    } else {
      settled = this.settle(message, entry.seq, disposition, performance.now() - started);
      this.settling.add(settled);
    }
    this.running--;
    this.wakeUp();
    if (settled) {
      await settled;
      this.settling.delete(settled);
    }
  }

  /** Records the outcome; the entry stays held until the write is committed. Never rejects. */
  private settle(
    message: ReceivedMessage,
    seq: number,
    disposition: Disposition,
    durationMs: number,
  ): Promise<void> {
    let written: Promise<void>;
    if (disposition.kind === 'ack') {
      const ack = this.database.statement('DELETE FROM bus_pending WHERE group_name = ? AND seq = ?');
      const write = () => this.database.write(() => void ack.run(this.group, seq));
      written = disposition.after ? disposition.after.then(write) : write();
      written = written.then(() => this.observer.acked?.(message, durationMs));
    } else if (disposition.kind === 'retry' && message.deliveryCount < this.maxDeliveries) {
      written = this.parkForRetry(message, seq, disposition.error);
    } else {
      const reason = disposition.kind === 'dead-letter' ? disposition.reason : 'max-deliveries';
      written = this.deadLetter(message, seq, disposition.error, reason);
    }
    return written
      .catch((error) => {
        // The entry stays pending for this consumer; once it is no longer held here, the scan
        // treats it like any idle entry and it is delivered again.
        this.logger.error(
          { err: error, stream: message.stream, entry_id: message.entryId },
          'settling an entry failed',
        );
        this.observer.error?.(error, 'settle');
      })
      .finally(() => this.held.delete(seq));
  }

  /**
   * Parks the entry on the retry pseudo-consumer with its idle time reset; a scan takes it again
   * once backoff(deliveryCount) has passed. No in-memory sleep, nothing lost on a crash.
   */
  private async parkForRetry(message: ReceivedMessage, seq: number, error: unknown): Promise<void> {
    const parkedAt = Date.now();
    const park = this.database.statement(
      'UPDATE bus_pending SET consumer = ?, delivered_ms = ? WHERE group_name = ? AND seq = ? AND consumer = ?',
    );
    const changes = await this.database.write(
      () => park.run(this.retryConsumer, parkedAt, this.group, seq, this.consumer).changes,
    );
    if (changes === 0) {
      this.logger.warn(
        { stream: message.stream, entry_id: message.entryId },
        'entry was taken over by another consumer before its retry was recorded',
      );
      return;
    }
    const delay = backoffDelay(
      message.deliveryCount,
      this.backoff,
      stableRandom(`${message.stream}/${message.entryId}/${message.deliveryCount}`),
    );
    this.retryDue.push(parkedAt + delay + 1);
    // The loop may be waiting with an older deadline; let it take the new one into account.
    this.wakeUp();
    this.logger.warn(
      { err: error, stream: message.stream, entry_id: message.entryId, delivery: message.deliveryCount },
      'handler failed; will retry',
    );
    this.observer.retried?.(message, error);
  }

  /** Writes the entry to `<prefix>:dlq:<group>` and acknowledges it, in one transaction. */
  private async deadLetter(
    message: ReceivedMessage,
    seq: number,
    error: unknown,
    reason: string,
  ): Promise<void> {
    const fields = fieldsToRecord(deadLetterFields(message, error, reason));
    const remove = this.database.statement(
      'DELETE FROM bus_pending WHERE group_name = ? AND seq = ? AND consumer = ?',
    );
    const moved = await this.database.write(() =>
      this.database.immediate(() => {
        if (remove.run(this.group, seq, this.consumer).changes === 0) return false;
        this.database.append([
          { stream: this.dlqStream, fields, registry: { prefix: this.prefix, deadLetterGroup: this.group } },
        ]);
        return true;
      }),
    );
    if (!moved) {
      this.logger.warn(
        { stream: message.stream, entry_id: message.entryId },
        'entry was taken over by another consumer before it could be dead-lettered',
      );
      return;
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
    this.observer.deadLettered?.(message, error, reason);
  }

  /** Resolves when woken (a slot freed up, new entries, shutdown) or after `timeoutMs`. */
  private wait(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(1, timeoutMs));
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      this.waiter = wake;
      function done() {
        wake();
      }
    });
  }

  private wakeUp(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  // ---------------------------------------------------------------------------------------------
  // Groups, streams and consumers

  /** Creates the group on a stream unless it exists (`beginning`: from seq 0; `latest`: after the newest entry). */
  private ensureGroup(stream: string, from: 'beginning' | 'latest'): void {
    let seq = 0;
    let entryId = '0-0';
    if (from === 'latest') {
      seq = this.database.currentSeq();
      entryId =
        (this.database
          .scalar('SELECT entry_id FROM bus_entries WHERE stream = ? ORDER BY seq DESC LIMIT 1')
          .get(stream) as string | undefined) ?? '0-0';
    }
    this.database
      .statement(
        `INSERT OR IGNORE INTO bus_groups (group_name, stream, last_delivered_seq, last_delivered_id, created_ms)
         VALUES (?, ?, ?, ?, ?)`,
      )
      .run(this.group, stream, seq, entryId, Date.now());
    if (!this.streams.has(stream)) {
      this.streams.add(stream);
      this.caughtUpTo = 0;
    }
  }

  /** Stream key of a subscribed name: an event type, or a group for dead-letter subscriptions. */
  private keyOf(name: string): string {
    return this.options.source === 'dead-letters'
      ? deadLetterStreamKey(this.prefix, name)
      : streamKey(this.prefix, name);
  }

  /**
   * Adds the streams that appeared since and match: of newly published types (e.g. a stage), or,
   * for a dead-letter subscription, of groups that dead-lettered for the first time.
   */
  private discover(from: 'beginning' | 'latest'): void {
    this.lastDiscovery = Date.now();
    this.seenRegistryVersion = this.database.registryVersion;
    if (this.patterns.length === 0) return;
    const names = this.database
      .scalar(
        this.options.source === 'dead-letters'
          ? 'SELECT dead_letter_group FROM bus_streams WHERE prefix = ? AND dead_letter_group IS NOT NULL'
          : 'SELECT type FROM bus_streams WHERE prefix = ? AND type IS NOT NULL',
      )
      .all(this.prefix) as string[];
    const fresh = names
      .map((name) => ({ name, key: this.keyOf(name) }))
      .filter(
        ({ name, key }) => !this.streams.has(key) && this.patterns.some((p) => matchesEventPattern(p, name)),
      );
    if (fresh.length === 0) return;
    this.database.immediate(() => {
      for (const { key } of fresh) this.ensureGroup(key, from);
    });
    this.logger.debug({ streams: fresh.map((f) => f.key) }, 'discovered streams');
  }

  /** Records that this consumer is alive, for inspection (`bus_consumers`). */
  private heartbeat(now: number): void {
    this.lastHeartbeat = now;
    const beat = this.database.statement(
      `INSERT INTO bus_consumers (group_name, consumer, seen_ms) VALUES (?, ?, ?)
       ON CONFLICT (group_name, consumer) DO UPDATE SET seen_ms = excluded.seen_ms`,
    );
    this.database
      .write(() => beat.run(this.group, this.consumer, now))
      .catch((error) => this.observer.error?.(error, 'heartbeat'));
  }

  /** Forgets consumers that left nothing pending and have been idle long (restarted processes). */
  private cleanupConsumers(now: number): void {
    this.lastCleanup = now;
    const forget = this.database.statement(
      `DELETE FROM bus_consumers
        WHERE group_name = ? AND consumer <> ? AND seen_ms <= ?
          AND NOT EXISTS (SELECT 1 FROM bus_pending p
                           WHERE p.group_name = bus_consumers.group_name AND p.consumer = bus_consumers.consumer)`,
    );
    this.database
      .write(() => forget.run(this.group, this.consumer, now - this.cleanupIdleMs))
      .catch((error) => this.observer.error?.(error, 'cleanup'));
  }
}

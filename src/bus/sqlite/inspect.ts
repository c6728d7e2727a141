import type { TrimOptions, TrimResult } from '../types.js';
import { parseFields, type SqliteBusDatabase } from './database.js';

/** A consumer group on one stream, as `XINFO GROUPS` shows it. */
export interface GroupInfo {
  group: string;
  stream: string;
  /** Id of the last entry handed to the group (`0-0` before the first). */
  lastDeliveredId: string;
  /** Entries delivered and not yet acknowledged (including those parked for a retry). */
  pending: number;
  /** Entries appended after the last delivered one: the group's backlog. */
  lag: number;
}

/** A consumer of a group, as `XINFO CONSUMERS` shows it. */
export interface ConsumerInfo {
  name: string;
  pending: number;
  /** Milliseconds since it last read, claimed or renewed (or since its oldest delivery). */
  idleMs: number;
}

/** A pending entry, as `XPENDING … IDLE` shows it. */
export interface PendingEntry {
  stream: string;
  entryId: string;
  consumer: string;
  deliveryCount: number;
  idleMs: number;
}

/** An entry as stored. */
export interface StoredEntry {
  stream: string;
  /** Position in the file, increasing across all streams; a cursor for {@link RangeOptions.afterSeq}. */
  seq: number;
  entryId: string;
  fields: Record<string, string>;
}

/** A stream in the file. */
export interface StreamInfo {
  stream: string;
  /** The event type when a publisher registered the stream (undefined for dead-letter and replay streams). */
  type: string | undefined;
  /** The group whose dead-letter stream this is (undefined for other streams). */
  deadLetterGroup: string | undefined;
  length: number;
  /** Id of the newest entry ever appended (`0-0` when none). */
  lastEntryId: string;
}

export interface RangeOptions {
  /** Entries after this entry id (exclusive). @defaultValue the start of the stream */
  after?: string;
  /** Entries after this seq (exclusive); faster than `after` on long streams. */
  afterSeq?: number;
  /** @defaultValue 100 */
  count?: number;
  /** Newest first. @defaultValue false */
  reverse?: boolean;
}

/** Consumer groups and their lag, optionally of one stream or one group. */
export function groupInfo(
  database: SqliteBusDatabase,
  filter: { stream?: string; group?: string } = {},
): GroupInfo[] {
  const rows = database
    .statement(
      `SELECT g.group_name AS "group", g.stream AS stream, g.last_delivered_id AS lastDeliveredId,
              (SELECT count(*) FROM bus_pending p WHERE p.group_name = g.group_name AND p.stream = g.stream) AS pending,
              (SELECT count(*) FROM bus_entries e WHERE e.stream = g.stream AND e.seq > g.last_delivered_seq) AS lag
         FROM bus_groups g
        WHERE (@stream IS NULL OR g.stream = @stream) AND (@group IS NULL OR g.group_name = @group)
        ORDER BY g.stream, g.group_name`,
    )
    .all({ stream: filter.stream ?? null, group: filter.group ?? null });
  return rows as GroupInfo[];
}

/** Consumers of a group: those that read recently and those still holding pending entries. */
export function consumerInfo(database: SqliteBusDatabase, group: string): ConsumerInfo[] {
  const now = Date.now();
  const rows = database
    .statement(
      `SELECT name, sum(pending) AS pending, max(seen) AS seen FROM (
         SELECT consumer AS name, 0 AS pending, seen_ms AS seen FROM bus_consumers WHERE group_name = @group
         UNION ALL
         SELECT consumer, count(*), max(delivered_ms) FROM bus_pending WHERE group_name = @group GROUP BY consumer
       ) GROUP BY name ORDER BY name`,
    )
    .all({ group }) as { name: string; pending: number; seen: number }[];
  return rows.map((r) => ({ name: r.name, pending: r.pending, idleMs: Math.max(0, now - r.seen) }));
}

/** Pending entries of a group, oldest first. */
export function pendingEntries(
  database: SqliteBusDatabase,
  options: { group: string; stream?: string; consumer?: string; limit?: number },
): PendingEntry[] {
  const now = Date.now();
  const rows = database
    .statement(
      `SELECT stream, entry_id AS entryId, consumer, delivery_count AS deliveryCount, delivered_ms AS deliveredMs
         FROM bus_pending
        WHERE group_name = @group AND (@stream IS NULL OR stream = @stream)
          AND (@consumer IS NULL OR consumer = @consumer)
        ORDER BY seq LIMIT @limit`,
    )
    .all({
      group: options.group,
      stream: options.stream ?? null,
      consumer: options.consumer ?? null,
      limit: options.limit ?? 100,
    }) as (Omit<PendingEntry, 'idleMs'> & { deliveredMs: number })[];
  return rows.map(({ deliveredMs, ...r }) => ({ ...r, idleMs: Math.max(0, now - deliveredMs) }));
}

/** Number of entries a group has not acknowledged on a stream. */
export function pendingCount(database: SqliteBusDatabase, stream: string, group: string): number {
  return database
    .scalar('SELECT count(*) FROM bus_pending WHERE group_name = ? AND stream = ?')
    .get(group, stream) as number;
}

/** Entries of a stream in order (like XRANGE / XREVRANGE). */
export function readRange(
  database: SqliteBusDatabase,
  stream: string,
  options: RangeOptions = {},
): StoredEntry[] {
  const count = options.count ?? 100;
  if (!(Number.isInteger(count) && count > 0))
    throw new RangeError(`count must be a positive integer, got ${count}`);
  let afterSeq = options.afterSeq ?? 0;
  if (options.after !== undefined) afterSeq = Math.max(afterSeq, seqAfterId(database, stream, options.after));
  const order = options.reverse ? 'DESC' : 'ASC';
  const rows = database
    .statement(
      `SELECT stream, seq, entry_id AS entryId, fields FROM bus_entries
        WHERE stream = ? AND seq > ? ORDER BY seq ${order} LIMIT ?`,
    )
    .all(stream, afterSeq, count) as { stream: string; seq: number; entryId: string; fields: string }[];
  return rows.map((r) => ({ ...r, fields: parseFields(r.fields) }));
}

/**
 * The seq of the last entry of `stream` whose id is at most `entryId` (the id need not exist), or 0.
 * Entry ids increase with seq within a stream, so a binary search over seq finds it in a few
 * index seeks however long the stream — paging through a stream by id stays linear.
 */
function seqAfterId(database: SqliteBusDatabase, stream: string, entryId: string): number {
  const match = /^(\d+)(?:-(\d+))?$/.exec(entryId);
  if (!match) throw new RangeError(`entry id must look like <ms>-<n>, got "${entryId.slice(0, 40)}"`);
  const target: [number, number] = [Number(match[1]), Number(match[2] ?? 0)];
  const bounds = database
    .statement('SELECT min(seq) AS first, max(seq) AS last FROM bus_entries WHERE stream = ?')
    .get(stream) as { first: number | null; last: number | null };
  if (bounds.first === null || bounds.last === null) return 0;
  const atOrAfter = database.statement(
    'SELECT seq, entry_id FROM bus_entries WHERE stream = ? AND seq >= ? ORDER BY seq LIMIT 1',
  );
  const entryFrom = (seq: number) => {
    const row = atOrAfter.get(stream, seq) as { seq: number; entry_id: string };
    const [ms = '0', n = '0'] = row.entry_id.split('-');
    const newer = Number(ms) - target[0] || Number(n) - target[1];
    return { seq: row.seq, newer: newer > 0 };
  };
  if (!entryFrom(bounds.last).newer) return bounds.last;
  // Smallest s whose first entry at or after s is newer than the id; every entry before it is not.
  let lo = bounds.first;
  let hi = bounds.last;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const entry = entryFrom(mid);
    if (entry.newer) hi = mid;
    else lo = entry.seq + 1;
  }
  return entryFrom(lo).seq - 1;
}

/** Streams in the file, optionally only those registered under a prefix (event and dead-letter streams). */
export function streamInfo(database: SqliteBusDatabase, prefix?: string): StreamInfo[] {
  const rows = database
    .statement(
      `SELECT s.stream, s.type, s.dead_letter_group AS deadLetterGroup, s.last_ms AS lastMs, s.last_n AS lastN,
              (SELECT count(*) FROM bus_entries e WHERE e.stream = s.stream) AS length
         FROM bus_streams s WHERE (@prefix IS NULL OR s.prefix = @prefix) ORDER BY s.stream`,
    )
    .all({ prefix: prefix ?? null }) as {
    stream: string;
    type: string | null;
    deadLetterGroup: string | null;
    lastMs: number;
    lastN: number;
    length: number;
  }[];
  return rows.map((r) => ({
    stream: r.stream,
    type: r.type ?? undefined,
    deadLetterGroup: r.deadLetterGroup ?? undefined,
    length: r.length,
    lastEntryId: r.lastMs < 0 ? '0-0' : `${r.lastMs}-${r.lastN}`,
  }));
}

/** Rows deleted per transaction while trimming, so other writers never wait long for the lock. */
const TRIM_CHUNK = 2000;

/**
 * Trims a stream without removing entries a group has not acknowledged: the cut is bounded by
 * each group's oldest pending entry and, past that, by the entry after its last delivered one —
 * the same rule as the Redis backend's XTRIM MINID.
 */
export async function trimStream(
  database: SqliteBusDatabase,
  stream: string,
  options: TrimOptions,
): Promise<TrimResult> {
  const { maxAgeMs, maxLen } = options;
  if (maxAgeMs !== undefined && !(Number.isFinite(maxAgeMs) && maxAgeMs >= 0)) {
    throw new RangeError(`trim ${stream}: maxAgeMs must be a number of milliseconds >= 0, got ${maxAgeMs}`);
  }
  if (maxLen !== undefined && !(Number.isInteger(maxLen) && maxLen >= 0)) {
    throw new RangeError(`trim ${stream}: maxLen must be an integer >= 0, got ${maxLen}`);
  }
  const plan = database.immediate(() => {
    const last = database
      .scalar('SELECT seq FROM bus_entries WHERE stream = ? ORDER BY seq DESC LIMIT 1')
      .get(stream) as number | undefined;
    if (last === undefined) return undefined;
    // Everything below `cut` (a seq) goes, unless a group still needs it.
    let cut: number | undefined;
    if (maxAgeMs !== undefined) {
      const firstYoung = database
        .scalar('SELECT seq FROM bus_entries WHERE stream = ? AND created_ms >= ? ORDER BY seq LIMIT 1')
        .get(stream, Date.now() - maxAgeMs) as number | undefined;
      cut = firstYoung ?? last + 1;
    }
    if (maxLen !== undefined) {
      const oldestKept =
        maxLen === 0
          ? last + 1
          : (database
              .scalar('SELECT seq FROM bus_entries WHERE stream = ? ORDER BY seq DESC LIMIT 1 OFFSET ?')
              .get(stream, maxLen - 1) as number | undefined);
      if (oldestKept !== undefined) cut = Math.max(cut ?? 0, oldestKept);
    }
    if (cut === undefined) return undefined;
    const needed = oldestNeededSeq(database, stream);
    const protectedByGroups = needed !== undefined && needed < cut;
    return { bound: protectedByGroups ? needed! : cut, protectedByGroups };
  });
  if (!plan) return { stream, removed: 0, protectedByGroups: false };
  let removed = 0;
  const remove = database.statement(
    `DELETE FROM bus_entries WHERE seq IN
       (SELECT seq FROM bus_entries WHERE stream = ? AND seq < ? ORDER BY seq LIMIT ${TRIM_CHUNK})`,
  );
  for (;;) {
    const deleted = database.immediate(() => remove.run(stream, plan.bound).changes);
    removed += deleted;
    if (deleted < TRIM_CHUNK) break;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return { stream, removed, protectedByGroups: plan.protectedByGroups };
}

/**
 * The smallest seq some group reading the stream still needs: its oldest pending entry, or the entry
 * after its last delivered one. Undefined when no group reads the stream.
 */
export function oldestNeededSeq(database: SqliteBusDatabase, stream: string): number | undefined {
  const groups = database
    .statement('SELECT group_name, last_delivered_seq FROM bus_groups WHERE stream = ?')
    .all(stream) as { group_name: string; last_delivered_seq: number }[];
  const oldestPending = database.scalar(
    'SELECT seq FROM bus_pending WHERE group_name = ? AND stream = ? ORDER BY seq LIMIT 1',
  );
  let floor: number | undefined;
  for (const group of groups) {
    let needed = group.last_delivered_seq + 1;
    const pending = oldestPending.get(group.group_name, stream) as number | undefined;
    if (pending !== undefined) needed = Math.min(needed, pending);
    floor = floor === undefined ? needed : Math.min(floor, needed);
  }
  return floor;
}

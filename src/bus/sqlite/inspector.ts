import { deadLetterStreamKey } from '../../events/streams.js';
import {
  consumersNotYetSeen,
  DEFAULT_FORGET_DEAD_CONSUMERS_AFTER_MS,
  isForgettable,
} from '../consumer-report.js';
import { describeConsumer } from '../consumers.js';
import type { BusInspector, GroupStatus, ProcessHeartbeat } from '../types.js';
import type { SqliteBusDatabase } from './database.js';

/** Heartbeats silent this long are forgotten. */
const FORGET_AFTER_MS = 86_400_000;

/** Options of {@link SqliteInspector}. */
export interface SqliteInspectorOptions {
  database: SqliteBusDatabase;
  prefix: string;
  /** How often processes beat, in ms; a consumer is dead after 3 missed beats. @defaultValue 5000 */
  heartbeatIntervalMs?: number;
  /**
   * A dead consumer with nothing pending is deleted once it has been dead and idle this long, so
   * restarted processes do not pile up. @defaultValue 3600000 (1 h)
   */
  forgetDeadConsumersAfterMs?: number;
}

/**
 * Consumer group state of the embedded bus (`bus_groups`, `bus_pending`, `bus_consumers`) and
 * process heartbeats (`bus_heartbeats`), in the same shape as the Redis inspector reports them:
 * with the consumers of live processes that have not read yet, and without consumers dead and
 * idle for {@link SqliteInspectorOptions.forgetDeadConsumersAfterMs}, which it deletes.
 */
export class SqliteInspector implements BusInspector {
  private readonly database: SqliteBusDatabase;
  private readonly interval: number;
  private readonly forgetAfterMs: number;

  constructor(private readonly options: SqliteInspectorOptions) {
    this.database = options.database;
    this.interval = options.heartbeatIntervalMs ?? 5000;
    this.forgetAfterMs = options.forgetDeadConsumersAfterMs ?? DEFAULT_FORGET_DEAD_CONSUMERS_AFTER_MS;
  }

  async beat(heartbeat: ProcessHeartbeat, stopped = false): Promise<void> {
    const key = `${heartbeat.host}:${heartbeat.pid}`;
    if (stopped) {
      const forget = this.database.statement('DELETE FROM bus_heartbeats WHERE process = ? AND prefix = ?');
      await this.database.write(() => forget.run(key, this.options.prefix));
      return;
    }
    const record = this.database.statement(
      `INSERT INTO bus_heartbeats (process, prefix, heartbeat, beat_ms) VALUES (?, ?, ?, ?)
       ON CONFLICT (process, prefix) DO UPDATE SET heartbeat = excluded.heartbeat, beat_ms = excluded.beat_ms`,
    );
    await this.database.write(() =>
      record.run(key, this.options.prefix, JSON.stringify(heartbeat), heartbeat.beatAt.getTime()),
    );
  }

  async heartbeats(): Promise<ProcessHeartbeat[]> {
    const now = Date.now();
    const rows = this.database
      .statement('SELECT process, heartbeat, beat_ms FROM bus_heartbeats WHERE prefix = ?')
      .all(this.options.prefix) as { process: string; heartbeat: string; beat_ms: number }[];
    const out: ProcessHeartbeat[] = [];
    const stale: string[] = [];
    for (const row of rows) {
      if (now - row.beat_ms > FORGET_AFTER_MS) {
        stale.push(row.process);
        continue;
      }
      try {
        const parsed = JSON.parse(row.heartbeat) as ProcessHeartbeat;
        out.push({ ...parsed, beatAt: new Date(parsed.beatAt), startedAt: new Date(parsed.startedAt) });
      } catch {
        stale.push(row.process);
      }
    }
    if (stale.length > 0) {
      const forget = this.database.statement('DELETE FROM bus_heartbeats WHERE process = ? AND prefix = ?');
      await this.database.write(() => {
        for (const process of stale) forget.run(process, this.options.prefix);
      });
    }
    return out.sort((a, b) => a.host.localeCompare(b.host) || a.pid - b.pid);
  }

  async groups(): Promise<GroupStatus[]> {
    const { prefix } = this.options;
    const now = Date.now();
    const beats = await this.heartbeats();
    const alive = new Map(beats.map((b) => [`${b.host}:${b.pid}`, b]));
    const streams = this.database
      .statement(
        `SELECT g.group_name AS "group", g.stream AS stream,
                (SELECT count(*) FROM bus_entries e WHERE e.stream = g.stream AND e.seq > g.last_delivered_seq) AS lag,
                (SELECT count(*) FROM bus_pending p WHERE p.group_name = g.group_name AND p.stream = g.stream) AS pending,
                (SELECT p.entry_id FROM bus_pending p WHERE p.group_name = g.group_name AND p.stream = g.stream
                  ORDER BY p.seq LIMIT 1) AS oldestPendingId
           FROM bus_groups g
          WHERE substr(g.stream, 1, length(@prefix) + 1) = @prefix || ':'
          ORDER BY g.group_name, g.stream`,
      )
      .all({ prefix }) as {
      group: string;
      stream: string;
      lag: number;
      pending: number;
      oldestPendingId: string | null;
    }[];
    const consumersOf = this.database.statement(
      `SELECT name, sum(pending) AS pending, max(seen) AS seen FROM (
         SELECT consumer AS name, 0 AS pending, seen_ms AS seen FROM bus_consumers WHERE group_name = @group
         UNION ALL
         SELECT consumer, count(*), max(delivered_ms) FROM bus_pending WHERE group_name = @group GROUP BY consumer
       ) GROUP BY name ORDER BY name`,
    );
    const deadLettered = this.database.scalar('SELECT count(*) FROM bus_entries WHERE stream = ?');
    const groups = new Map<string, GroupStatus>();
    for (const row of streams) {
      // Dead-letter streams are written, never read by a group; a group on one is not a consumer group of events.
      if (row.stream === deadLetterStreamKey(prefix, row.group)) continue;
      const oldest = row.oldestPendingId === null ? null : now - Number(row.oldestPendingId.split('-')[0]);
      let group = groups.get(row.group);
      if (!group) {
        group = {
          group: row.group,
          streams: [],
          lag: 0,
          pending: 0,
          oldestPendingAgeMs: null,
          consumers: [],
          deadLettered: 0,
        };
        groups.set(row.group, group);
      }
      group.streams.push({
        stream: row.stream,
        lag: row.lag,
        pending: row.pending,
        oldestPendingAgeMs: oldest,
      });
      group.lag += row.lag;
      group.pending += row.pending;
      if (oldest !== null) group.oldestPendingAgeMs = Math.max(group.oldestPendingAgeMs ?? 0, oldest);
    }
    // Only if still idle and holding nothing when deleted: its process may be alive after all.
    const forget = this.database.statement(
      `DELETE FROM bus_consumers WHERE group_name = @group AND consumer = @name AND seen_ms <= @before
          AND NOT EXISTS (SELECT 1 FROM bus_pending p WHERE p.group_name = @group AND p.consumer = @name)`,
    );
    const forgotten: { group: string; name: string }[] = [];
    for (const group of groups.values()) {
      const rows = consumersOf.all({ group: group.group }) as {
        name: string;
        pending: number;
        seen: number;
      }[];
      const consumers = rows.map((c) =>
        describeConsumer(group.group, c.name, c.pending, Math.max(0, now - c.seen), alive, this.interval),
      );
      group.consumers = consumers.filter((c) => {
        if (!isForgettable(c, this.forgetAfterMs, now)) return true;
        forgotten.push({ group: group.group, name: c.name });
        return false;
      });
      group.consumers.push(...consumersNotYetSeen(group.group, group.consumers, beats, this.interval, now));
      group.consumers.sort((a, b) => a.name.localeCompare(b.name));
      group.deadLettered = deadLettered.get(deadLetterStreamKey(prefix, group.group)) as number;
    }
    if (forgotten.length > 0) {
      const before = now - this.forgetAfterMs;
      await this.database.write(() => {
        for (const { group, name } of forgotten) forget.run({ group, name, before });
      });
    }
    return [...groups.values()];
  }
}

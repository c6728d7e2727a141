import { deadLetterStreamKey, replayStreamKey, streamKey, streamRegistryKey } from '../../events/streams.js';
import {
  consumersNotYetSeen,
  DEFAULT_FORGET_DEAD_CONSUMERS_AFTER_MS,
  isForgettable,
} from '../consumer-report.js';
import { describeConsumer } from '../consumers.js';
import type {
  BusInspector,
  ConsumerStatus,
  GroupStatus,
  ProcessHeartbeat,
  StreamGroupStatus,
} from '../types.js';
import { isCluster, type RedisClient, streamIdTime } from './connection.js';

export interface RedisInspectorOptions {
  client: RedisClient;
  prefix: string;
  /** How often processes beat, in ms; a consumer is dead after 3 missed beats. @defaultValue 5000 */
  heartbeatIntervalMs?: number;
  /**
   * A dead consumer with nothing pending is deleted (XGROUP DELCONSUMER) once it has been dead
   * and idle this long, so restarted processes do not pile up. @defaultValue 3600000 (1 h)
   */
  forgetDeadConsumersAfterMs?: number;
}

/**
 * Deletes a consumer only if, at that moment, nothing is pending on it and it is idle long
 * enough: XINFO and XGROUP DELCONSUMER in one script, so an entry delivered to it meanwhile (a
 * process without heartbeats that is in fact alive) is never dropped from the pending list.
 */
const DELETE_IDLE_CONSUMER = `
local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
if not ok then return -1 end
for _, c in ipairs(consumers) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['name'] == ARGV[2] then
    if tonumber(f['pending']) == 0 and tonumber(f['idle']) >= tonumber(ARGV[3]) then
      return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
    end
    return -1
  end
end
return -1
`;

/**
 * KEYS: streams. For each stream that exists, `{ index, groups }`, each group as `{ XINFO GROUPS
 * fields, id of its oldest pending entry (or false), XINFO CONSUMERS }`: the whole report in one
 * call instead of two or three commands per stream.
 */
const READ_GROUPS = `
local out = {}
for i, key in ipairs(KEYS) do
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', key)
  if ok then
    local listed = {}
    for _, g in ipairs(groups) do
      local f = {}
      for j = 1, #g, 2 do f[g[j]] = g[j + 1] end
      local oldest = false
      if tonumber(f['pending']) > 0 then oldest = redis.call('XPENDING', key, f['name'])[2] end
      listed[#listed + 1] = { g, oldest, redis.call('XINFO', 'CONSUMERS', key, f['name']) }
    end
    out[#out + 1] = { i, listed }
  end
end
return out
`;

/** KEYS: streams. Their lengths (0 for a missing one). */
const LENGTHS = `
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('XLEN', key) end
return out
`;

/** What XINFO GROUPS, XPENDING and XINFO CONSUMERS say about one group on one stream. */
interface RawGroup {
  info: unknown[];
  oldestPendingId: string | null;
  consumers: unknown[][];
}

function record(raw: unknown[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < raw.length; i += 2) out[String(raw[i])] = String(raw[i + 1]);
  return out;
}

/**
 * Consumer group state from XINFO / XPENDING, and process heartbeats in the hash
 * `<prefix>:heartbeats` (field `<host>:<pid>`, value JSON). Reporting the groups also shows the
 * consumers of live processes that have not read yet and deletes long-dead idle consumers (see
 * {@link RedisInspectorOptions.forgetDeadConsumersAfterMs}).
 */
export class RedisInspector implements BusInspector {
  private readonly interval: number;
  private readonly forgetAfterMs: number;

  constructor(private readonly options: RedisInspectorOptions) {
    this.interval = options.heartbeatIntervalMs ?? 5000;
    this.forgetAfterMs = options.forgetDeadConsumersAfterMs ?? DEFAULT_FORGET_DEAD_CONSUMERS_AFTER_MS;
  }

  private get heartbeatKey(): string {
    return `${this.options.prefix}:heartbeats`;
  }

  async beat(heartbeat: ProcessHeartbeat, stopped = false): Promise<void> {
    const field = `${heartbeat.host}:${heartbeat.pid}`;
    if (stopped) {
      await this.options.client.hdel(this.heartbeatKey, field);
      return;
    }
    await this.options.client.hset(this.heartbeatKey, field, JSON.stringify(heartbeat));
  }

  async heartbeats(): Promise<ProcessHeartbeat[]> {
    const all = await this.options.client.hgetall(this.heartbeatKey);
    const out: ProcessHeartbeat[] = [];
    for (const [field, json] of Object.entries(all)) {
      try {
        const parsed = JSON.parse(json) as ProcessHeartbeat;
        const beatAt = new Date(parsed.beatAt);
        // Forget processes silent for a day; younger silent ones show as dead.
        if (Date.now() - beatAt.getTime() > 86_400_000) {
          await this.options.client.hdel(this.heartbeatKey, field);
          continue;
        }
        out.push({ ...parsed, beatAt, startedAt: new Date(parsed.startedAt) });
      } catch {
        await this.options.client.hdel(this.heartbeatKey, field);
      }
    }
    return out.sort((a, b) => a.host.localeCompare(b.host) || a.pid - b.pid);
  }

  async groups(): Promise<GroupStatus[]> {
    const { client, prefix } = this.options;
    const types = await client.smembers(streamRegistryKey(prefix));
    const streams = types.map((t) => streamKey(prefix, t));
    const beats = await this.heartbeats();
    const alive = new Map(beats.map((b) => [`${b.host}:${b.pid}`, b]));
    const now = Date.now();
    const groups = new Map<string, GroupStatus>();
    const consumers = new Map<string, Map<string, ConsumerStatus>>();
    /** The streams each consumer of each group is on (Redis keeps a consumer per stream). */
    const consumerStreams = new Map<string, string[]>();

    const visit = (stream: string, rawGroups: RawGroup[]) => {
      for (const raw of rawGroups) {
        const info = record(raw.info);
        const name = info.name!;
        const pending = Number(info.pending);
        const oldest = raw.oldestPendingId ? now - streamIdTime(raw.oldestPendingId) : null;
        const lag =
          info.lag === undefined || info.lag === '' || info.lag === 'null' ? null : Number(info.lag);
        const status: StreamGroupStatus = { stream, lag, pending, oldestPendingAgeMs: oldest };
        let group = groups.get(name);
        if (!group) {
          group = {
            group: name,
            streams: [],
            lag: 0,
            pending: 0,
            oldestPendingAgeMs: null,
            consumers: [],
            deadLettered: 0,
          };
          groups.set(name, group);
          consumers.set(name, new Map());
        }
        group.streams.push(status);
        group.lag += lag ?? 0;
        group.pending += pending;
        if (oldest !== null) group.oldestPendingAgeMs = Math.max(group.oldestPendingAgeMs ?? 0, oldest);
        const known = consumers.get(name)!;
        for (const rawConsumer of raw.consumers) {
          const c = record(rawConsumer);
          const on = `${name}\n${c.name}`;
          consumerStreams.set(on, [...(consumerStreams.get(on) ?? []), stream]);
          const existing = known.get(c.name!);
          if (existing) {
            existing.pending += Number(c.pending);
            existing.idleMs = Math.min(existing.idleMs, Number(c.idle));
            continue;
          }
          known.set(
            c.name!,
            describeConsumer(name, c.name!, Number(c.pending), Number(c.idle), alive, this.interval),
          );
        }
      }
    };
    for (const [stream, raw] of await this.readGroups(streams)) visit(stream, raw);
    // Every group has a replay stream from its first subscription on, so a group whose processes
    // beat shows before any of its streams is registered (no event published yet).
    const named = new Set([...groups.keys(), ...beats.flatMap((b) => b.groups)]);
    const replays = [...named].map((group) => replayStreamKey(prefix, group));
    for (const [stream, raw] of await this.readGroups(replays)) visit(stream, raw);
    const names = [...groups.keys()];
    const deadLettered = await this.lengths(names.map((name) => deadLetterStreamKey(prefix, name)));
    for (const [name, group] of groups) {
      const listed: ConsumerStatus[] = [];
      for (const consumer of consumers.get(name)!.values()) {
        let forgotten = isForgettable(consumer, this.forgetAfterMs, now);
        if (forgotten) {
          for (const stream of consumerStreams.get(`${name}\n${consumer.name}`) ?? []) {
            const deleted = await client.eval(
              DELETE_IDLE_CONSUMER,
              1,
              stream,
              name,
              consumer.name,
              this.forgetAfterMs,
            );
            if (deleted === -1) forgotten = false;
          }
        }
        if (!forgotten) listed.push(consumer);
      }
      listed.push(...consumersNotYetSeen(name, listed, beats, this.interval, now));
      group.consumers = listed.sort((a, b) => a.name.localeCompare(b.name));
      group.deadLettered = deadLettered[names.indexOf(name)] ?? 0;
    }
    return [...groups.values()].sort((a, b) => a.group.localeCompare(b.group));
  }

  /**
   * The groups of each existing stream, in order. On a standalone Redis one script call for all
   * streams; on a cluster, where a script cannot span hash slots, commands per stream.
   */
  private async readGroups(streams: string[]): Promise<[string, RawGroup[]][]> {
    const { client } = this.options;
    if (streams.length === 0) return [];
    if (!isCluster(client)) {
      const reply = (await client.eval(READ_GROUPS, streams.length, ...streams)) as [
        number,
        [unknown[], string | null, unknown[][]][],
      ][];
      return reply.map(([index, listed]) => [
        streams[index - 1]!,
        listed.map(([info, oldest, consumers]) => ({ info, oldestPendingId: oldest || null, consumers })),
      ]);
    }
    const out: [string, RawGroup[]][] = [];
    for (const stream of streams) {
      let infos: unknown[][];
      try {
        infos = (await client.xinfo('GROUPS', stream)) as unknown[][];
      } catch {
        continue;
      }
      const listed: RawGroup[] = [];
      for (const info of infos) {
        const { name, pending } = record(info);
        const oldest =
          Number(pending) > 0 ? ((await client.xpending(stream, name!)) as [number, string | null])[1] : null;
        const consumers = (await client.xinfo('CONSUMERS', stream, name!)) as unknown[][];
        listed.push({ info, oldestPendingId: oldest, consumers });
      }
      out.push([stream, listed]);
    }
    return out;
  }

  private async lengths(streams: string[]): Promise<number[]> {
    const { client } = this.options;
    if (streams.length === 0) return [];
    if (!isCluster(client)) return (await client.eval(LENGTHS, streams.length, ...streams)) as number[];
    return Promise.all(streams.map((stream) => client.xlen(stream)));
  }
}

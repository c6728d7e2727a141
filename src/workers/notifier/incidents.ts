import type { RedisClient } from '../../bus/redis/connection.js';

/** An incident a channel opened and has not resolved yet. */
export interface OpenIncident {
  /** Dedup key: `materi:<project>:<environment>:<service>` (bus alerts: `materi:bus:<group>:<alert>`). */
  key: string;
  component: string;
  /** The labels it was raised with (Alertmanager resolves by sending the same labels). */
  labels: Record<string, string>;
  /** When it was first raised (RFC 3339). */
  startsAt: string;
  /** The event that raised it. */
  eventId: string;
}

/**
 * The incidents each PagerDuty/Alertmanager channel has open, per scope (`<project>:<environment>`
 * or `bus:<group>`), so that the next success in that scope resolves exactly what was triggered.
 * `open` keeps the first record of a key (re-triggering an open incident changes nothing).
 */
export interface IncidentStore {
  open(channel: string, scope: string, incidents: readonly OpenIncident[]): Promise<void>;
  /** The open incidents, ordered by key. */
  list(channel: string, scope: string): Promise<OpenIncident[]>;
  close(channel: string, scope: string, keys: readonly string[]): Promise<void>;
}

function byKey(a: OpenIncident, b: OpenIncident): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** Options of {@link RedisIncidentStore}. */
export interface RedisIncidentStoreOptions {
  client: RedisClient;
  /** One hash per channel and scope: `<prefix>:incidents:<channel>:<scope>`, field = dedup key. */
  prefix: string;
  /** Incidents never resolved are forgotten after this long. @defaultValue 2592000000 (30 days) */
  ttlMs?: number;
}

/** {@link IncidentStore} on Redis, shared by every notifier process. */
export class RedisIncidentStore implements IncidentStore {
  private readonly ttlMs: number;

  constructor(private readonly options: RedisIncidentStoreOptions) {
    this.ttlMs = options.ttlMs ?? 30 * 24 * 3_600_000;
  }

  private key(channel: string, scope: string): string {
    return `${this.options.prefix}:incidents:${channel}:${scope}`;
  }

  async open(channel: string, scope: string, incidents: readonly OpenIncident[]): Promise<void> {
    if (incidents.length === 0) return;
    const key = this.key(channel, scope);
    const pipeline = this.options.client.pipeline();
    for (const incident of incidents) pipeline.hsetnx(key, incident.key, JSON.stringify(incident));
    pipeline.pexpire(key, this.ttlMs);
    const results = await pipeline.exec();
    const failed = results?.find(([error]) => error);
    if (failed) throw failed[0];
  }

  async list(channel: string, scope: string): Promise<OpenIncident[]> {
    const records = await this.options.client.hvals(this.key(channel, scope));
    return records.map((r) => JSON.parse(r) as OpenIncident).sort(byKey);
  }

  async close(channel: string, scope: string, keys: readonly string[]): Promise<void> {
    if (keys.length > 0) await this.options.client.hdel(this.key(channel, scope), ...keys);
  }
}

/** {@link IncidentStore} in this process's memory (one notifier process). */
export class MemoryIncidentStore implements IncidentStore {
  private readonly open_ = new Map<string, Map<string, OpenIncident>>();

  async open(channel: string, scope: string, incidents: readonly OpenIncident[]): Promise<void> {
    const id = `${channel}\u0000${scope}`;
    const map = this.open_.get(id) ?? new Map<string, OpenIncident>();
    for (const incident of incidents) if (!map.has(incident.key)) map.set(incident.key, incident);
    this.open_.set(id, map);
  }

  async list(channel: string, scope: string): Promise<OpenIncident[]> {
    return [...(this.open_.get(`${channel}\u0000${scope}`)?.values() ?? [])].sort(byKey);
  }

  async close(channel: string, scope: string, keys: readonly string[]): Promise<void> {
    const map = this.open_.get(`${channel}\u0000${scope}`);
    for (const key of keys) map?.delete(key);
  }
}

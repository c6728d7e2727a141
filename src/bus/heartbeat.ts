import { hostname } from 'node:os';
import { describeConsumer } from './consumers.js';
import type { BusInspector, ProcessHeartbeat } from './types.js';

export interface HeartbeatOptions {
  /** What runs in this process: `up`, `worker validator`, … */
  role: string;
  /** Consumer groups this process reads. */
  groups: () => string[];
  /** @defaultValue 5000 */
  intervalMs?: number;
}

/**
 * Beats for this process every interval, so `materi workers` can tell live consumers from dead
 * ones. Returns a function that stops beating and records that the process left.
 */
export function startHeartbeat(inspector: BusInspector, options: HeartbeatOptions): () => Promise<void> {
  const startedAt = new Date();
  const heartbeat = () => ({
    host: hostname(),
    pid: process.pid,
    role: options.role,
    groups: options.groups(),
    startedAt,
    beatAt: new Date(),
  });
  const beat = () => inspector.beat(heartbeat()).catch(() => {});
  void beat();
  const timer = setInterval(beat, options.intervalMs ?? 5000);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await inspector.beat(heartbeat(), true).catch(() => {});
  };
}

/**
 * Tells whether a consumer's process is gone: it beat once and then missed three beats. A process
 * never seen beating counts as alive (it may not have sent its first beat yet). Heartbeats are read
 * at most once per `cacheMs`.
 */
export function consumerLiveness(
  inspector: BusInspector,
  heartbeatIntervalMs = 5000,
  cacheMs = 1000,
): (consumer: string, group: string) => Promise<boolean> {
  let cached: { at: number; beats: Promise<Map<string, ProcessHeartbeat>> } | undefined;
  const beats = () => {
    if (!cached || Date.now() - cached.at >= cacheMs) {
      const read = inspector.heartbeats().then((list) => new Map(list.map((b) => [`${b.host}:${b.pid}`, b])));
      cached = { at: Date.now(), beats: read };
      read.catch(() => {
        cached = undefined;
      });
    }
    return cached.beats;
  };
  return async (consumer, group) => {
    const status = describeConsumer(group, consumer, 0, 0, await beats(), heartbeatIntervalMs);
    return status.state === 'dead' && status.lastHeartbeat !== undefined;
  };
}

import { hostname } from 'node:os';
import type { BusInspector } from './types.js';

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

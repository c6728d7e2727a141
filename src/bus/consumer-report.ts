import { describeConsumer } from './consumers.js';
import type { ConsumerStatus, ProcessHeartbeat } from './types.js';

/**
 * What both inspectors add to the consumers a backend knows: the consumers of processes that beat
 * but have not read anything yet, and when a dead consumer may be forgotten.
 *
 * @module
 */

/** A dead consumer with nothing pending is forgotten once dead and idle this long. */
export const DEFAULT_FORGET_DEAD_CONSUMERS_AFTER_MS = 3_600_000;

/**
 * The consumers of live processes that read `group` (their heartbeat lists it) but that the
 * backend does not know yet: Redis creates a consumer only when XREADGROUP first delivers an
 * entry to it, so a fresh worker of a quiet group would be invisible. Each is reported as
 * `<group>:<host>:<pid>:0`, alive, nothing pending, idle since its process started.
 */
export function consumersNotYetSeen(
  group: string,
  known: readonly ConsumerStatus[],
  heartbeats: readonly ProcessHeartbeat[],
  heartbeatIntervalMs: number,
  now = Date.now(),
): ConsumerStatus[] {
  const byProcess = new Map(heartbeats.map((b) => [`${b.host}:${b.pid}`, b]));
  const seen = new Set(known.map((c) => `${c.host}:${c.pid}`));
  const out: ConsumerStatus[] = [];
  for (const beat of heartbeats) {
    if (!beat.groups.includes(group) || seen.has(`${beat.host}:${beat.pid}`)) continue;
    const idleMs = Math.max(0, now - beat.startedAt.getTime());
    const name = `${group}:${beat.host}:${beat.pid}:0`;
    const status = describeConsumer(group, name, 0, idleMs, byProcess, heartbeatIntervalMs);
    if (status.state === 'alive') out.push(status);
  }
  return out;
}

/**
 * Whether a consumer can be forgotten: its process is dead (no heartbeat, or none for
 * `afterMs`), nothing is pending on it, and it has not read for `afterMs`. Forgetting it loses
 * nothing: a process that is in fact alive gets a consumer again on its next read.
 */
export function isForgettable(consumer: ConsumerStatus, afterMs: number, now = Date.now()): boolean {
  return (
    consumer.state === 'dead' &&
    consumer.pending === 0 &&
    consumer.idleMs >= afterMs &&
    (consumer.lastHeartbeat === undefined || now - consumer.lastHeartbeat.getTime() >= afterMs)
  );
}

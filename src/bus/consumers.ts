import { describeCause } from '../errors/index.js';
import { PRIORITY_RANK, type PriorityName } from '../events/catalog.js';
import type { ConsumerStatus, ProcessHeartbeat, ReceivedMessage, SubscriptionOptions } from './types.js';

/**
 * What both backends share about consumers: their names, the retry parking slot, subscription
 * settings, and the fields of a dead-letter entry.
 *
 * @module
 */

/** Handling priority of an entry from its fields: NORMAL when missing or unreadable. */
export function priorityOf(fields: Record<string, string>): PriorityName {
  const p = fields.priority as PriorityName | undefined;
  return p && p in PRIORITY_RANK ? p : 'NORMAL';
}

/** A consumer's name: `<group>:<host>:<pid>:<slot>`. */
export function consumerName(group: string, host: string, slot = 0): string {
  return `${group}:${host}:${process.pid}:${slot}`;
}

/** Name of the pseudo-consumer that holds a group's entries waiting for a retry. */
export function retryConsumerName(group: string): string {
  return `${group}@retry`;
}

export function validateSubscriptionOptions(options: SubscriptionOptions): void {
  const positive = (name: string, value: number | undefined) => {
    if (value !== undefined && !(Number.isInteger(value) && value > 0)) {
      throw new RangeError(`subscription ${options.group}: ${name} must be a positive integer, got ${value}`);
    }
  };
  if (!/^[A-Za-z0-9:_.-]+$/.test(options.group)) {
    throw new RangeError(`subscription group "${options.group}" may hold only letters, digits and : _ . -`);
  }
  if (options.types.length === 0) throw new RangeError(`subscription ${options.group}: no event types given`);
  positive('concurrency', options.concurrency);
  positive('maxDeliveries', options.maxDeliveries);
  positive('claimIdleMs', options.claimIdleMs);
}

/** A heartbeat older than this many intervals means the process is gone. */
const MISSED_BEATS = 3;

/**
 * A consumer as `materi workers` shows it: the retry slot, or a process consumer joined with its
 * process' heartbeat (alive when it beat within three intervals, else dead).
 */
export function describeConsumer(
  group: string,
  name: string,
  pending: number,
  idleMs: number,
  heartbeats: Map<string, ProcessHeartbeat>,
  heartbeatIntervalMs: number,
): ConsumerStatus {
  if (name === retryConsumerName(group)) return { name, pending, idleMs, state: 'retry' };
  // <group>:<host>:<pid>:<slot> — the group itself may contain ':'.
  const parts = name.slice(group.length + 1).split(':');
  const slot = parts.pop();
  const pid = Number(parts.pop());
  const host = parts.join(':');
  const beat = heartbeats.get(`${host}:${pid}`);
  const fresh = beat !== undefined && Date.now() - beat.beatAt.getTime() < MISSED_BEATS * heartbeatIntervalMs;
  return {
    name,
    pending,
    idleMs,
    host: slot === undefined ? undefined : host,
    pid: Number.isFinite(pid) ? pid : undefined,
    lastHeartbeat: beat?.beatAt,
    state: fresh ? 'alive' : 'dead',
  };
}

/** Fields of a dead-letter entry: where it came from, why it failed, and the original entry. */
export function deadLetterFields(message: ReceivedMessage, error: unknown, reason: string): string[] {
  const original = message.fields;
  // A replayed entry that fails again is recorded against its original stream and entry.
  const sourceStream = original.replay_of_stream ?? message.stream;
  const entryId = original.replay_of_entry ?? message.entryId;
  const stack = error instanceof Error && error.stack ? error.stack.slice(0, 4000) : '';
  const payload: Record<string, string> = {};
  for (const [k, v] of Object.entries(original)) if (!k.startsWith('replay_of_')) payload[k] = v;
  return [
    'source_stream',
    sourceStream,
    'entry_id',
    entryId,
    'event_id',
    original.id ?? '',
    'type',
    original.type ?? '',
    'group',
    message.group,
    'consumer',
    message.consumer,
    'attempts',
    String(message.deliveryCount),
    'reason',
    reason,
    'error',
    describeCause(error).slice(0, 2000),
    'stack',
    stack,
    'correlation_id',
    original.correlation_id ?? '',
    'deployment_id',
    original.deployment_id ?? '',
    'failed_at',
    new Date().toISOString(),
    'payload',
    JSON.stringify(payload),
  ];
}

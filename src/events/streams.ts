/**
 * Key names on the event bus. Every key starts with the stream prefix
 * (`MATERI_STREAM_PREFIX`, default `materi:events:deployment`).
 *
 * @module
 */

export const DEFAULT_STREAM_PREFIX = 'materi:events:deployment';

/**
 * A stage name may appear in a stream key, so it is restricted to a safe alphabet. (Here, not in
 * the catalog, so the plan parser can check names without loading the generated event types.)
 */
export const STAGE_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

/** Stream key of an event type: `<prefix>:<type>`. */
export function streamKey(prefix: string, type: string): string {
  return `${prefix}:${type}`;
}

/** Dead-letter stream of a consumer group: `<prefix>:dlq:<group>`. */
export function deadLetterStreamKey(prefix: string, group: string): string {
  return `${prefix}:dlq:${group}`;
}

/**
 * Set of every event type that has been published under the prefix. Per-stage streams appear
 * when a plan first uses a stage, so subscribers read this set to discover them.
 */
export function streamRegistryKey(prefix: string): string {
  return `${prefix}:registry:streams`;
}

/** Set of the consumer groups that have a dead-letter stream. */
export function deadLetterRegistryKey(prefix: string): string {
  return `${prefix}:registry:dlq`;
}

/** Stream from which a group receives replays of its dead-lettered events (only that group reads it). */
export function replayStreamKey(prefix: string, group: string): string {
  return `${prefix}:replay:${group}`;
}

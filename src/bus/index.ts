/**
 * The event bus: publisher, subscriber and router interfaces, and their backends.
 *
 * @module
 */
export * from './backoff.js';
export * from './context.js';
export * from './event-publisher.js';
export * from './stream-reader.js';
export * from './types.js';

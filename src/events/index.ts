/**
 * The event contract: generated protobuf messages, the catalog of event types, stream keys and
 * the stream entry codec.
 *
 * @module
 */
export * from './catalog.js';
export * from './codec.js';
export * from './envelope.js';
export * from './gen/materi/events/v1/base_event_pb.js';
export * from './gen/materi/events/v1/deployment_events_pb.js';
export * from './ids.js';
export * from './streams.js';

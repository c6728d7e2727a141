/**
 * Dead-letter records: the recorder that turns dead-letter stream entries into `failed_events`
 * rows, and replay.
 *
 * @module
 */

export { BusAlertMonitor, type BusAlertMonitorOptions, type BusAlertThresholds } from './alerts.js';
export {
  DEAD_LETTER_RECORDER_GROUP,
  type DeadLetterRecorderOptions,
  startDeadLetterRecorder,
} from './recorder.js';
export { deadLetterRecordFromFields } from './records.js';
export { type ReplayResult, replayFailedEvents } from './replay.js';

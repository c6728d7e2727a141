import type { DeadLetterRecord } from '../store/index.js';

/**
 * Reads a dead-letter stream entry (fields written by the bus, see docs/delivery.md) into a
 * record. Tolerant: a field the entry lacks becomes empty, so a malformed entry is still stored.
 */
export function deadLetterRecordFromFields(
  dlqEntryId: string,
  fields: Record<string, string>,
): DeadLetterRecord {
  let original: Record<string, string> = {};
  try {
    const parsed = JSON.parse(fields.payload ?? '{}') as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
      original = Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, String(v)]));
    }
  } catch {
    original = { payload: fields.payload ?? '' };
  }
  const failedAt = new Date(fields.failed_at ?? Number(dlqEntryId.split('-')[0]));
  const at = Number.isNaN(failedAt.getTime()) ? new Date(Number(dlqEntryId.split('-')[0])) : failedAt;
  const attempts = Number(fields.attempts);
  return {
    dlqEntryId,
    sourceStream: fields.source_stream ?? '',
    entryId: fields.entry_id ?? '',
    eventId: fields.event_id ?? '',
    eventType: fields.type ?? '',
    group: fields.group ?? '',
    consumer: fields.consumer ?? '',
    attempts: Number.isInteger(attempts) && attempts > 0 ? attempts : 1,
    error: fields.error ?? '',
    stack: fields.stack ?? '',
    fields: original,
    correlationId: fields.correlation_id ?? '',
    deploymentId: fields.deployment_id ?? '',
    firstFailedAt: at,
    lastFailedAt: at,
  };
}

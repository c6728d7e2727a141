/**
 * What `materi events publish` and `materi events tail` do when they run; events.ts registers them.
 *
 * @module
 */
import { toJson } from '@bufbuild/protobuf';
import { sleep } from '../bus/backoff.js';
import { openEventBus } from '../bus/open.js';
import { streamReaderFor } from '../bus/stream-reader.js';
import { BadInputError } from '../errors/index.js';
import {
  type DeploymentEvent,
  decodeEntry,
  FIXED_EVENT_TYPES,
  isKnownEventPattern,
  matchesEventPattern,
  parsePayloadJson,
  resolveEventType,
} from '../events/index.js';
import { loadSettings } from '../runtime/config.js';
import { createLogger } from '../runtime/logging.js';
import { announceBackend } from './shared.js';

export interface TailOptions {
  type: string[];
  correlationId?: string;
  fromStart?: boolean;
  json?: boolean;
  limit?: number;
}

/** `materi events publish <type>`: prints the event id (or the stored event with --json). */
export async function publish(
  type: string,
  options: { data: string; correlationId?: string; deploymentId?: string; json?: boolean },
): Promise<void> {
  const spec = resolveEventType(type);
  const data = parsePayloadJson(spec, options.data);
  const settings = loadSettings();
  const logger = createLogger({ name: 'cli', level: settings.logLevel });
  const bus = await openEventBus(settings, { logger, source: 'materi/cli' });
  announceBackend(bus);
  try {
    const published = await bus.publisher.publish({
      type,
      data,
      correlationId: options.correlationId,
      deploymentId: options.deploymentId,
    });
    if (options.json) {
      process.stdout.write(
        `${JSON.stringify(eventToJson(published.event, published.stream, published.entryId))}\n`,
      );
    } else {
      process.stdout.write(`${published.event.id}\n`);
    }
  } finally {
    await bus.close();
  }
}

/** `materi events tail`: prints new events (or all, --from-start) until Ctrl-C or --limit. */
export async function tail(options: TailOptions): Promise<void> {
  // A type nothing is ever published as would wait forever for its first event.
  const unknown = options.type.find((t) => !isKnownEventPattern(t));
  if (unknown !== undefined) {
    throw new BadInputError(
      `--type: unknown event type or pattern "${unknown}" (types: ${FIXED_EVENT_TYPES.join(', ')}, ` +
        'deployment:stage:<stage>:started|completed; * matches one segment, ** every type)',
    );
  }
  const settings = loadSettings();
  const logger = createLogger({ name: 'cli', level: settings.logLevel });
  const bus = await openEventBus(settings, { logger, source: 'materi/cli' });
  announceBackend(bus);
  const reader = streamReaderFor(bus);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // Position per type: the last entry printed (from the start, or from now).
  const positions = new Map<string, string | undefined>();
  const startAt = options.fromStart ? undefined : `${Date.now()}-0`;
  let printed = 0;
  try {
    while (!stop.signal.aborted) {
      const types = (await reader.types()).filter(
        (t) => options.type.length === 0 || options.type.some((p) => matchesEventPattern(p, t)),
      );
      for (const t of types) if (!positions.has(t)) positions.set(t, startAt);
      const batch: { event: DeploymentEvent; stream: string; entryId: string }[] = [];
      for (const [type, after] of positions) {
        for (const entry of await reader.read(type, after, 500)) {
          positions.set(type, entry.entryId);
          try {
            const event = decodeEntry(entry.fields);
            if (!options.correlationId || event.correlationId === options.correlationId) {
              batch.push({ event, stream: entry.stream, entryId: entry.entryId });
            }
          } catch (error) {
            process.stderr.write(
              `materi: skipping ${entry.stream} ${entry.entryId}: ${(error as Error).message}\n`,
            );
          }
        }
      }
      batch.sort((a, b) => a.event.time.getTime() - b.event.time.getTime());
      for (const item of batch) {
        process.stdout.write(
          `${options.json ? JSON.stringify(eventToJson(item.event, item.stream, item.entryId)) : eventLine(item.event)}\n`,
        );
        if (options.limit !== undefined && ++printed >= options.limit) stop.abort();
        if (stop.signal.aborted) break;
      }
      if (batch.length === 0) await sleep(200, stop.signal);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await bus.close();
  }
}

/** The JSON form of an event as the CLI and API print it. */
export function eventToJson(
  event: DeploymentEvent,
  stream?: string,
  entryId?: string,
): Record<string, unknown> {
  const spec = resolveEventType(event.type);
  return {
    id: event.id,
    type: event.type,
    source: event.source,
    time: event.time.toISOString(),
    correlation_id: event.correlationId,
    causation_id: event.causationId,
    deployment_id: event.deploymentId,
    priority: event.priority,
    schema: event.schema,
    ...(stream ? { stream, entry_id: entryId } : {}),
    data: toJson(spec.schema, event.data as never),
  };
}

function eventLine(event: DeploymentEvent): string {
  const data = JSON.stringify(eventToJson(event).data);
  return `${event.time.toISOString()}  ${event.type.padEnd(32)}  ${event.priority.padEnd(8)}  deployment=${event.deploymentId || '-'}  correlation=${event.correlationId}  ${data}`;
}

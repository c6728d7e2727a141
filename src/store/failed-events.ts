import { createHash } from 'node:crypto';
import type { Kysely, Selectable } from 'kysely';
import { BadInputError, ConflictError, NotFoundError } from '../errors/index.js';
import type { Database, FailedEventStatus, FailedEventsTable } from './schema.js';

/**
 * What the bus writes to the dead-letter stream `<prefix>:dlq:<group>` when it gives up on an entry,
 * and what {@link FailedEventStore.record} stores. Text fields the entry did not carry (an
 * undecodable entry may have no event id or type) are empty strings.
 */
export interface DeadLetterRecord {
  /** Id of the entry on the dead-letter stream. */
  dlqEntryId: string;
  /** Full key of the stream the entry was read from. */
  sourceStream: string;
  /** Id of the entry on the source stream. */
  entryId: string;
  eventId: string;
  eventType: string;
  /** Consumer group that failed to handle the entry. */
  group: string;
  /** Consumer that made the last attempt. */
  consumer: string;
  /** Deliveries the bus made before giving up (1 for an unrecoverable or undecodable entry). */
  attempts: number;
  /** One-line error of the last attempt. */
  error: string;
  stack: string;
  /** The original entry, field by field. */
  fields: Record<string, string>;
  correlationId: string;
  deploymentId: string;
  firstFailedAt: Date;
  lastFailedAt: Date;
}

/** A stored dead-letter record. */
export interface FailedEvent extends DeadLetterRecord {
  /** Short stable id (12 hex digits), the one the CLI and API show: {@link failedEventId}. */
  id: string;
  status: FailedEventStatus;
  /** When it was last replayed, if ever. */
  replayedAt?: Date;
  /** Who replayed it last: the token's name through the API, the user through the CLI. */
  replayedBy?: string;
  replayCount: number;
  /** When the first failure was recorded. */
  createdAt: Date;
}

export interface ListFailedEventsOptions {
  group?: string;
  /** Only records with this status. @defaultValue dead and replayed records; purged ones are hidden */
  status?: FailedEventStatus;
  correlationId?: string;
  deploymentId?: string;
  /** Only records whose last failure is strictly earlier (to page back in time). */
  before?: Date;
  /** 1 to 1000. @defaultValue 100 */
  limit?: number;
}

export interface PurgeFailedEventsOptions {
  /** Only records whose last failure is strictly earlier. @defaultValue every record */
  olderThan?: Date;
  group?: string;
}

export interface FailedEventStoreOptions {
  /** @defaultValue the system clock */
  now?: () => Date;
}

const STATUSES: readonly FailedEventStatus[] = ['dead', 'replayed', 'purged'];
const MAX_LIST_LIMIT = 1000;

/**
 * The id of the dead-letter record of an entry: the first 12 hex digits of SHA-256 over group,
 * source stream and entry id. Stable, so recording the same failure twice finds the same row.
 */
export function failedEventId(group: string, sourceStream: string, entryId: string): string {
  return createHash('sha256')
    .update(`${group}\u0000${sourceStream}\u0000${entryId}`)
    .digest('hex')
    .slice(0, 12);
}

/**
 * The dead-letter records (`failed_events`). A record moves `dead` → `replayed` (by
 * {@link markReplayed}) → `dead` again if the entry fails again; `purge` marks records `purged`,
 * which keeps them for audit but hides them from {@link list} unless asked for by status.
 */
export class FailedEventStore {
  readonly #db: Kysely<Database>;
  readonly #now: () => Date;

  constructor(db: Kysely<Database>, options: FailedEventStoreOptions = {}) {
    this.#db = db;
    this.#now = options.now ?? (() => new Date());
  }

  /**
   * Stores a dead letter and returns the record. Idempotent: the same dead-letter entry recorded
   * twice changes nothing. A new failure of an entry already recorded (a later dead-letter entry,
   * e.g. after a replay) replaces attempts, error, consumer and last failure time and sets the
   * status back to `dead`; a failure older than the one stored is ignored.
   */
  async record(deadLetter: DeadLetterRecord): Promise<FailedEvent> {
    checkDeadLetter(deadLetter);
    const id = failedEventId(deadLetter.group, deadLetter.sourceStream, deadLetter.entryId);
    const payload = JSON.stringify(deadLetter.fields);
    await this.#db
      .insertInto('failed_events')
      .values({
        id,
        dlq_entry_id: deadLetter.dlqEntryId,
        source_stream: deadLetter.sourceStream,
        entry_id: deadLetter.entryId,
        event_id: deadLetter.eventId,
        event_type: deadLetter.eventType,
        group_name: deadLetter.group,
        consumer: deadLetter.consumer,
        attempts: deadLetter.attempts,
        error: deadLetter.error,
        stack: deadLetter.stack,
        payload,
        correlation_id: deadLetter.correlationId,
        deployment_id: deadLetter.deploymentId,
        first_failed_at: deadLetter.firstFailedAt.getTime(),
        last_failed_at: deadLetter.lastFailedAt.getTime(),
        status: 'dead',
        created_at: this.#now().getTime(),
      })
      .onConflict((conflict) =>
        conflict
          .columns(['group_name', 'source_stream', 'entry_id'])
          .doUpdateSet((eb) => ({
            dlq_entry_id: eb.ref('excluded.dlq_entry_id'),
            event_id: eb.ref('excluded.event_id'),
            event_type: eb.ref('excluded.event_type'),
            consumer: eb.ref('excluded.consumer'),
            attempts: eb.ref('excluded.attempts'),
            error: eb.ref('excluded.error'),
            stack: eb.ref('excluded.stack'),
            payload: eb.ref('excluded.payload'),
            correlation_id: eb.ref('excluded.correlation_id'),
            deployment_id: eb.ref('excluded.deployment_id'),
            first_failed_at: eb
              .case()
              .when('failed_events.first_failed_at', '<', eb.ref('excluded.first_failed_at'))
              .then(eb.ref('failed_events.first_failed_at'))
              .else(eb.ref('excluded.first_failed_at'))
              .end(),
            last_failed_at: eb.ref('excluded.last_failed_at'),
            status: 'dead' as const,
          }))
          // Same dead-letter entry again (at-least-once delivery of the DLQ stream): nothing new.
          // A stale failure arriving after a newer one must not undo a replay either.
          .where((eb) =>
            eb.and([
              eb('failed_events.dlq_entry_id', '<>', eb.ref('excluded.dlq_entry_id')),
              eb('failed_events.last_failed_at', '<=', eb.ref('excluded.last_failed_at')),
            ]),
          ),
      )
      .execute();
    const stored = await this.get(id);
    if (!stored) throw new NotFoundError(`dead letter ${id} vanished while it was recorded`);
    return stored;
  }

  /**
   * Records newest failure first (then by id, descending). Without a status, purged records are
   * left out.
   */
  async list(options: ListFailedEventsOptions = {}): Promise<FailedEvent[]> {
    const limit = options.limit ?? 100;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
      throw new BadInputError(`limit must be an integer from 1 to ${MAX_LIST_LIMIT} (got ${limit})`);
    }
    if (options.status !== undefined) checkStatus(options.status);
    if (options.before !== undefined) checkDate('before', options.before);
    let query = this.#db.selectFrom('failed_events').selectAll();
    query =
      options.status === undefined
        ? query.where('status', '<>', 'purged')
        : query.where('status', '=', options.status);
    if (options.group !== undefined) query = query.where('group_name', '=', options.group);
    if (options.correlationId !== undefined)
      query = query.where('correlation_id', '=', options.correlationId);
    if (options.deploymentId !== undefined) query = query.where('deployment_id', '=', options.deploymentId);
    if (options.before !== undefined) query = query.where('last_failed_at', '<', options.before.getTime());
    const rows = await query.orderBy('last_failed_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
    return rows.map(toFailedEvent);
  }

  /** The record with this id, whatever its status; `undefined` when there is none. */
  async get(id: string): Promise<FailedEvent | undefined> {
    const row = await this.#db
      .selectFrom('failed_events')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? toFailedEvent(row) : undefined;
  }

  /**
   * Notes that the entry was published again: status `replayed`, the replay time, one more replay.
   * Throws {@link NotFoundError} for an unknown id and {@link ConflictError} for a purged record.
   */
  async markReplayed(id: string, by?: string): Promise<FailedEvent> {
    const result = await this.#db
      .updateTable('failed_events')
      .set((eb) => ({
        status: 'replayed' as const,
        replayed_at: this.#now().getTime(),
        replayed_by: by ?? null,
        replay_count: eb('replay_count', '+', 1),
      }))
      .where('id', '=', id)
      .where('status', '<>', 'purged')
      .executeTakeFirst();
    const stored = await this.get(id);
    if (!stored) throw new NotFoundError(`no dead letter with id "${id}"`);
    if (result.numUpdatedRows === 0n) throw new ConflictError(`dead letter "${id}" was purged`);
    return stored;
  }

  /**
   * Marks records `purged` (kept for audit, hidden from {@link list}) and returns how many. Without
   * options every dead and replayed record is purged.
   */
  async purge(options: PurgeFailedEventsOptions = {}): Promise<number> {
    if (options.olderThan !== undefined) checkDate('olderThan', options.olderThan);
    let query = this.#db
      .updateTable('failed_events')
      .set({ status: 'purged' })
      .where('status', '<>', 'purged');
    if (options.group !== undefined) query = query.where('group_name', '=', options.group);
    if (options.olderThan !== undefined) {
      query = query.where('last_failed_at', '<', options.olderThan.getTime());
    }
    const result = await query.executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  /**
   * Records waiting in status `dead`, per group. With a group, the answer has exactly that group
   * (0 when it has none); without, every group that has at least one.
   */
  async depth(group?: string): Promise<Record<string, number>> {
    let query = this.#db
      .selectFrom('failed_events')
      .select((eb) => ['group_name', eb.fn.countAll<number | string>().as('count')])
      .where('status', '=', 'dead')
      .groupBy('group_name')
      .orderBy('group_name');
    if (group !== undefined) query = query.where('group_name', '=', group);
    const rows = await query.execute();
    const depths: Record<string, number> = group === undefined ? {} : { [group]: 0 };
    for (const row of rows) depths[row.group_name] = Number(row.count);
    return depths;
  }
}

function toFailedEvent(row: Selectable<FailedEventsTable>): FailedEvent {
  const event: FailedEvent = {
    id: row.id,
    dlqEntryId: row.dlq_entry_id,
    sourceStream: row.source_stream,
    entryId: row.entry_id,
    eventId: row.event_id,
    eventType: row.event_type,
    group: row.group_name,
    consumer: row.consumer,
    attempts: Number(row.attempts),
    error: row.error,
    stack: row.stack,
    fields: JSON.parse(row.payload) as Record<string, string>,
    correlationId: row.correlation_id,
    deploymentId: row.deployment_id,
    firstFailedAt: new Date(Number(row.first_failed_at)),
    lastFailedAt: new Date(Number(row.last_failed_at)),
    status: row.status,
    replayCount: Number(row.replay_count),
    createdAt: new Date(Number(row.created_at)),
  };
  if (row.replayed_at !== null) event.replayedAt = new Date(Number(row.replayed_at));
  if (row.replayed_by) event.replayedBy = row.replayed_by;
  return event;
}

function checkDeadLetter(record: DeadLetterRecord): void {
  for (const field of ['dlqEntryId', 'sourceStream', 'entryId', 'group'] as const) {
    const value = record[field];
    if (typeof value !== 'string' || value === '') {
      throw new BadInputError(`dead letter: ${field} must be a non-empty string`);
    }
  }
  for (const field of [
    'eventId',
    'eventType',
    'consumer',
    'error',
    'stack',
    'correlationId',
    'deploymentId',
  ] as const) {
    if (typeof record[field] !== 'string') {
      throw new BadInputError(`dead letter ${record.dlqEntryId}: ${field} must be a string`);
    }
  }
  if (!Number.isInteger(record.attempts) || record.attempts < 0) {
    throw new BadInputError(
      `dead letter ${record.dlqEntryId}: attempts must be a whole number ≥ 0 (got ${record.attempts})`,
    );
  }
  if (typeof record.fields !== 'object' || record.fields === null || Array.isArray(record.fields)) {
    throw new BadInputError(`dead letter ${record.dlqEntryId}: fields must be an object of strings`);
  }
  for (const [name, value] of Object.entries(record.fields)) {
    if (typeof value !== 'string') {
      throw new BadInputError(`dead letter ${record.dlqEntryId}: field "${name}" must be a string`);
    }
  }
  checkDate('firstFailedAt', record.firstFailedAt);
  checkDate('lastFailedAt', record.lastFailedAt);
}

function checkDate(name: string, value: Date): void {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw new BadInputError(`${name} must be a valid date`);
  }
}

function checkStatus(status: string): asserts status is FailedEventStatus {
  if (!STATUSES.includes(status as FailedEventStatus)) {
    throw new BadInputError(`status must be one of ${STATUSES.join(', ')} (got "${status}")`);
  }
}

import type { Insertable, Kysely, Transaction, Updateable } from 'kysely';
import { BadInputError } from '../../errors/index.js';
import type { DeploymentEvent } from '../../events/envelope.js';
import { ORCHESTRATOR_SOURCE } from '../../events/sources.js';
import type { Database } from '../../store/schema.js';
import { type EventOrigin, eventRow, type LoggedEvent, loggedEventOf } from '../event-log.js';
import {
  compareEvents,
  type DeploymentStatusName,
  foldDeployment,
  type IgnoredEvent,
  type UnifiedDeployment,
} from '../record.js';
import type { ShieldDeploymentsTable, ShieldEventsTable } from './schema.js';

/** Filters of {@link ShieldStore.listDeployments}. Every filter is an exact match. */
export interface DeploymentFilter {
  environment?: string;
  /** Deployments that covered this service. */
  service?: string;
  /** Any of these statuses. */
  status?: readonly DeploymentStatusName[];
  version?: string;
  project?: string;
  /** Started at or after. */
  from?: Date;
  /** Started before. */
  to?: Date;
  /** 1 to 200. @defaultValue 50 */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
}

/** Filters of {@link ShieldStore.listEvents}. */
export interface EventFilter {
  correlationId?: string;
  deploymentId?: string;
  /** Exact event type. */
  type?: string;
  /** Published at or after. */
  from?: Date;
  /** Published before. */
  to?: Date;
  /** 1 to 1000. @defaultValue 200 */
  limit?: number;
  cursor?: string;
}

/** A page of results, and the cursor of the next page (null on the last one). */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** What logging one event did. */
export interface AppliedEvent {
  /** The event as logged (the first copy, when it was logged before). */
  logged: LoggedEvent;
  /** False when the event was already in the log (a redelivery or a duplicate). */
  inserted: boolean;
  /** The deployment's record after the event; undefined for events without a deployment id. */
  record?: UnifiedDeployment;
  /** Whether the stored record changed. */
  changed: boolean;
  /** Why the event does not change its deployment's record (it is logged all the same). */
  ignored?: IgnoredEvent;
}

export interface ShieldStoreOptions {
  /** @defaultValue the system clock */
  now?: () => Date;
}

type Db = Kysely<Database> | Transaction<Database>;

const MAX_DEPLOYMENT_LIMIT = 200;
const MAX_EVENT_LIMIT = 1000;

function encodeCursor(parts: (string | number)[]): string {
  return Buffer.from(JSON.stringify(parts)).toString('base64url');
}

/** The parts of a cursor this store made, checked against their expected types. */
function decodeCursor<T extends (string | number)[]>(cursor: string, types: ('string' | 'number')[]): T {
  let parts: unknown;
  try {
    parts = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    parts = undefined;
  }
  if (
    !Array.isArray(parts) ||
    parts.length !== types.length ||
    !parts.every((part, i) => typeof part === types[i])
  ) {
    throw new BadInputError('cursor: not a cursor this API returned (use nextCursor as given)');
  }
  return parts as T;
}

function checkLimit(limit: number, max: number): number {
  if (!Number.isInteger(limit) || limit < 1 || limit > max) {
    throw new BadInputError(`limit: must be an integer from 1 to ${max} (got ${limit})`);
  }
  return limit;
}

/**
 * Shield's tables: the event log (`shield_events`), the deployment records (`shield_deployments`)
 * and the services each deployment covered (`shield_deployment_services`).
 *
 * Logging an event and recomputing its deployment's record happen in one transaction that first
 * takes the deployment row's lock (an upsert bumping `revision`). Whoever takes the lock later sees
 * every event committed before, so concurrent consumers — in one process or several — always
 * leave the record computed from all the events.
 */
export class ShieldStore {
  readonly #db: Kysely<Database>;
  readonly #now: () => Date;

  constructor(db: Kysely<Database>, options: ShieldStoreOptions = {}) {
    this.#db = db;
    this.#now = options.now ?? (() => new Date());
  }

  /** Logs an event (once, by id) and recomputes its deployment's record. */
  async apply(event: DeploymentEvent, origin: EventOrigin): Promise<AppliedEvent> {
    const row = eventRow(event, origin, this.#now().getTime());
    return this.#db.transaction().execute(async (trx) => {
      const inserted = await trx
        .insertInto('shield_events')
        .values(row)
        .onConflict((oc) => oc.column('event_id').doNothing())
        .returning('seq')
        .executeTakeFirst();
      const stored = await trx
        .selectFrom('shield_events')
        .selectAll()
        .where('event_id', '=', event.id)
        .executeTakeFirstOrThrow();
      const logged = loggedEventOf(stored);
      if (logged.deploymentId === '') return { logged, inserted: inserted !== undefined, changed: false };
      const { record, changed, ignored } = await this.#recompute(
        trx,
        logged.deploymentId,
        Date.parse(logged.time),
      );
      return {
        logged,
        inserted: inserted !== undefined,
        record,
        changed,
        ignored: ignored.find((i) => i.eventId === logged.id),
      };
    });
  }

  /** Logs events without touching the records (for a rebuild); returns how many were new. */
  async logEvents(events: readonly { event: DeploymentEvent; origin: EventOrigin }[]): Promise<number> {
    if (events.length === 0) return 0;
    const loggedAt = this.#now().getTime();
    const rows: Insertable<ShieldEventsTable>[] = events.map(({ event, origin }) =>
      eventRow(event, origin, loggedAt),
    );
    const result = await this.#db
      .insertInto('shield_events')
      .values(rows)
      .onConflict((oc) => oc.column('event_id').doNothing())
      .executeTakeFirst();
    return Number(result.numInsertedOrUpdatedRows ?? 0);
  }

  /** Recomputes one deployment's record from the log. */
  async recompute(deploymentId: string): Promise<UnifiedDeployment | undefined> {
    return this.#db.transaction().execute(async (trx) => (await this.#recompute(trx, deploymentId)).record);
  }

  /** Every deployment id in the event log. */
  async loggedDeploymentIds(): Promise<string[]> {
    const rows = await this.#db
      .selectFrom('shield_events')
      .select('deployment_id')
      .distinct()
      .where('deployment_id', '<>', '')
      .orderBy('deployment_id')
      .execute();
    return rows.map((r) => r.deployment_id);
  }

  /**
   * Ids of the records that have no `deployment:started` from the orchestrator in the log, sorted:
   * their first events were never logged (trimmed from the streams before Shield read them).
   */
  async deploymentsWithoutStart(): Promise<string[]> {
    const rows = await this.#db
      .selectFrom('shield_deployments')
      .select('id')
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('shield_events')
              .select('seq')
              .whereRef('shield_events.deployment_id', '=', 'shield_deployments.id')
              .where('shield_events.type', '=', 'deployment:started')
              .where('shield_events.source', '=', ORCHESTRATOR_SOURCE),
          ),
        ),
      )
      .orderBy('id')
      .execute();
    return rows.map((r) => r.id);
  }

  /** Empties the projection: the event log, the records and the service index (for tests). */
  async clear(): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await trx.deleteFrom('shield_deployment_services').execute();
      await trx.deleteFrom('shield_deployments').execute();
      await trx.deleteFrom('shield_events').execute();
    });
  }

  async getDeployment(id: string): Promise<UnifiedDeployment | undefined> {
    const row = await this.#db
      .selectFrom('shield_deployments')
      .select('record')
      .where('id', '=', id)
      .executeTakeFirst();
    return row ? (JSON.parse(row.record) as UnifiedDeployment) : undefined;
  }

  /** Deployments newest first (by start), filtered, one page at a time. */
  async listDeployments(filter: DeploymentFilter = {}): Promise<Page<UnifiedDeployment>> {
    const limit = checkLimit(filter.limit ?? 50, MAX_DEPLOYMENT_LIMIT);
    let query = this.#db.selectFrom('shield_deployments').select(['id', 'sort_at', 'record']);
    if (filter.environment !== undefined) query = query.where('environment', '=', filter.environment);
    if (filter.version !== undefined) query = query.where('version', '=', filter.version);
    if (filter.project !== undefined) query = query.where('project', '=', filter.project);
    if (filter.status !== undefined && filter.status.length > 0) {
      query = query.where('status', 'in', [...filter.status]);
    }
    if (filter.from !== undefined) query = query.where('sort_at', '>=', filter.from.getTime());
    if (filter.to !== undefined) query = query.where('sort_at', '<', filter.to.getTime());
    if (filter.service !== undefined) {
      const service = filter.service;
      query = query.where('id', 'in', (eb) =>
        eb.selectFrom('shield_deployment_services').select('deployment_id').where('service', '=', service),
      );
    }
    if (filter.cursor !== undefined) {
      const [sortAt, id] = decodeCursor<[number, string]>(filter.cursor, ['number', 'string']);
      query = query.where((eb) =>
        eb.or([eb('sort_at', '<', sortAt), eb.and([eb('sort_at', '=', sortAt), eb('id', '<', id)])]),
      );
    }
    const rows = await query
      .orderBy('sort_at', 'desc')
      .orderBy('id', 'desc')
      .limit(limit + 1)
      .execute();
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      items: page.map((r) => JSON.parse(r.record) as UnifiedDeployment),
      nextCursor: rows.length > limit && last ? encodeCursor([Number(last.sort_at), last.id]) : null,
    };
  }

  /** A deployment's events in fold order: time, then lifecycle order, then id. */
  async timeline(deploymentId: string): Promise<LoggedEvent[]> {
    const rows = await this.#db
      .selectFrom('shield_events')
      .selectAll()
      .where('deployment_id', '=', deploymentId)
      .orderBy('time')
      .orderBy('seq')
      .execute();
    return rows.map(loggedEventOf).sort(compareEvents);
  }

  /** Events by time (oldest first), filtered, one page at a time. */
  async listEvents(filter: EventFilter = {}): Promise<Page<LoggedEvent>> {
    const limit = checkLimit(filter.limit ?? 200, MAX_EVENT_LIMIT);
    let query = this.#db.selectFrom('shield_events').selectAll();
    if (filter.correlationId !== undefined) query = query.where('correlation_id', '=', filter.correlationId);
    if (filter.deploymentId !== undefined) query = query.where('deployment_id', '=', filter.deploymentId);
    if (filter.type !== undefined) query = query.where('type', '=', filter.type);
    if (filter.from !== undefined) query = query.where('time', '>=', filter.from.getTime());
    if (filter.to !== undefined) query = query.where('time', '<', filter.to.getTime());
    if (filter.cursor !== undefined) {
      const [time, seq] = decodeCursor<[number, number]>(filter.cursor, ['number', 'number']);
      query = query.where((eb) =>
        eb.or([eb('time', '>', time), eb.and([eb('time', '=', time), eb('seq', '>', seq)])]),
      );
    }
    const rows = await query
      .orderBy('time')
      .orderBy('seq')
      .limit(limit + 1)
      .execute();
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return {
      items: page.map(loggedEventOf),
      nextCursor: rows.length > limit && last ? encodeCursor([Number(last.time), Number(last.seq)]) : null,
    };
  }

  /** Events logged after a sequence number, in log order (to resume an SSE stream). */
  async eventsAfter(seq: number, limit: number, deploymentId?: string): Promise<LoggedEvent[]> {
    let query = this.#db.selectFrom('shield_events').selectAll().where('seq', '>', seq);
    if (deploymentId !== undefined) query = query.where('deployment_id', '=', deploymentId);
    const rows = await query.orderBy('seq').limit(limit).execute();
    return rows.map(loggedEventOf);
  }

  /** The sequence number of the latest logged event (0 when the log is empty). */
  async lastSeq(): Promise<number> {
    const row = await this.#db
      .selectFrom('shield_events')
      .select((eb) => eb.fn.max('seq').as('seq'))
      .executeTakeFirst();
    return Number(row?.seq ?? 0);
  }

  /** How many events the log holds. */
  async eventCount(): Promise<number> {
    const row = await this.#db
      .selectFrom('shield_events')
      .select((eb) => eb.fn.countAll<number | string>().as('count'))
      .executeTakeFirstOrThrow();
    return Number(row.count);
  }

  async #recompute(
    trx: Db,
    deploymentId: string,
    eventTime = this.#now().getTime(),
  ): Promise<{ record?: UnifiedDeployment; changed: boolean; ignored: IgnoredEvent[] }> {
    // Creates the row or bumps its revision: either way this transaction now holds the row lock.
    await trx
      .insertInto('shield_deployments')
      .values({
        id: deploymentId,
        project: '',
        version: '',
        environment: '',
        strategy: '',
        correlation_id: '',
        status: 'PENDING',
        phase: 'pending',
        sort_at: eventTime,
        updated_at: eventTime,
        record: '',
      })
      .onConflict((oc) =>
        oc
          .column('id')
          .doUpdateSet((eb) => ({ revision: eb(eb.ref('shield_deployments.revision'), '+', 1) })),
      )
      .execute();
    const previous = await trx
      .selectFrom('shield_deployments')
      .select('record')
      .where('id', '=', deploymentId)
      .executeTakeFirstOrThrow();
    const rows = await trx
      .selectFrom('shield_events')
      .selectAll()
      .where('deployment_id', '=', deploymentId)
      .execute();
    const { record, ignored } = foldDeployment(deploymentId, rows.map(loggedEventOf));
    if (!record) {
      await trx.deleteFrom('shield_deployment_services').where('deployment_id', '=', deploymentId).execute();
      await trx.deleteFrom('shield_deployments').where('id', '=', deploymentId).execute();
      return { changed: previous.record !== '', ignored };
    }
    const text = JSON.stringify(record);
    if (text === previous.record) return { record, changed: false, ignored };
    const sortAt = Date.parse(record.startedAt ?? record.lastEventAt);
    const columns: Updateable<ShieldDeploymentsTable> = {
      project: record.project,
      version: record.version,
      environment: record.environment,
      strategy: record.strategy,
      status: record.status,
      phase: record.phase,
      correlation_id: record.correlationId,
      started_at: record.startedAt === null ? null : Date.parse(record.startedAt),
      finished_at: record.finishedAt === null ? null : Date.parse(record.finishedAt),
      sort_at: sortAt,
      updated_at: Date.parse(record.lastEventAt),
      record: text,
    };
    await trx.updateTable('shield_deployments').set(columns).where('id', '=', deploymentId).execute();
    await trx.deleteFrom('shield_deployment_services').where('deployment_id', '=', deploymentId).execute();
    if (record.services.length > 0) {
      await trx
        .insertInto('shield_deployment_services')
        .values(
          [...new Set(record.services)].map((service) => ({
            deployment_id: deploymentId,
            service,
            environment: record.environment,
            sort_at: sortAt,
          })),
        )
        .execute();
    }
    return { record, changed: true, ignored };
  }
}

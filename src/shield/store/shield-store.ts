import { randomInt } from 'node:crypto';
import type { Insertable, Kysely, Selectable, Transaction } from 'kysely';
import { BadInputError } from '../../errors/index.js';
import type { DeploymentEvent } from '../../events/envelope.js';
import { ORCHESTRATOR_SOURCE } from '../../events/sources.js';
import type { Database } from '../../store/schema.js';
import { type EventOrigin, eventRow, type LoggedEvent, loggedEventOf } from '../event-log.js';
import {
  compareEvents,
  type DeploymentStatusName,
  type FoldState,
  foldDeployment,
  foldStep,
  foldsInOrder,
  type IgnoredEvent,
  loadFoldState,
  recordOf,
  saveFoldState,
  type UnifiedDeployment,
} from '../record.js';
import type { ShieldDeploymentServicesTable, ShieldDeploymentsTable, ShieldEventsTable } from './schema.js';

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

/** An event to log and fold, and where it was read from. */
export interface EventToApply {
  event: DeploymentEvent;
  origin: EventOrigin;
}

/** The rows of `shield_deployment_services` a record's index holds. */
interface ServiceIndex {
  services: string[];
  environment: string;
  sortAt: number;
}

/** A record's `fold_state` column: its fold state and the service index written for it. */
interface SavedProjection {
  fold: unknown;
  index: ServiceIndex;
}

/** A deployment's fold after a write, as this store last committed it. */
interface CommittedFold {
  /** The row's revision after the write. */
  revision: number;
  state: FoldState;
  index: ServiceIndex;
}

/** What folding the new events of one deployment left. */
interface Folding {
  record: UnifiedDeployment | undefined;
  ignored: IgnoredEvent[];
  commit: CommittedFold | undefined;
}

/** The columns a fold writes besides the id. */
type WrittenColumn = Exclude<keyof ShieldDeploymentsTable, 'id' | 'revision'>;

/** Fold states kept in memory, by deployment (the least recently written are forgotten first). */
const FOLD_CACHE_LIMIT = 1_000;

/** Where a new row's revision starts: random, so a cached fold of a deleted row never matches. */
function firstRevision(): number {
  return randomInt(1, 2 ** 30);
}

/** The placeholder row an upsert creates before the record is computed (it takes the row lock). */
function placeholderRow(id: string, eventTime: number): Insertable<ShieldDeploymentsTable> {
  return {
    id,
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
    revision: firstRevision(),
  };
}

function parseSaved(text: string | null): { state?: FoldState; index?: ServiceIndex } {
  if (text === null || text === '') return {};
  try {
    const saved = JSON.parse(text) as SavedProjection;
    const state = loadFoldState(saved.fold);
    return state ? { state, index: saved.index } : {};
  } catch {
    return {};
  }
}

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
 * Logging events and folding them into their deployments' records happen in one transaction
 * that first takes each deployment row's lock (an upsert bumping `revision`), in id order. Whoever
 * takes the lock later sees every event and fold committed before, so concurrent consumers — in
 * one process or several — always leave the record computed from all the events.
 *
 * Beside each record is its fold state (`fold_state`): an event that sorts after every event
 * folded is folded into it (`foldStep`), O(1) in the deployment's history; an event that arrives
 * out of fold order, or a row without a current fold state, folds all the deployment's logged
 * events again. Either way the record is `foldDeployment` of all its logged events. Invariant:
 * a `fold_state` covers exactly the deployment's logged events, so whoever logs events without
 * folding them ({@link ShieldStore.logEvents}) clears it. The fold states this store wrote are
 * also kept in memory, used while the row's revision shows no other writer since.
 */
export class ShieldStore {
  readonly #db: Kysely<Database>;
  readonly #now: () => Date;
  /** The folds this store committed, by deployment id, least recently written first. */
  readonly #folds = new Map<string, CommittedFold>();

  constructor(db: Kysely<Database>, options: ShieldStoreOptions = {}) {
    this.#db = db;
    this.#now = options.now ?? (() => new Date());
  }

  /** Logs an event (once, by id) and folds it into its deployment's record. */
  async apply(event: DeploymentEvent, origin: EventOrigin): Promise<AppliedEvent> {
    return (await this.applyBatch([{ event, origin }]))[0]!;
  }

  /**
   * Logs events (each once, by id) and folds the new ones into their deployments' records, in one
   * transaction; the results are in the order of `items`. An event logged before (a redelivery,
   * or a duplicate in `items`) changes nothing: its record already holds it.
   */
  async applyBatch(items: readonly EventToApply[]): Promise<AppliedEvent[]> {
    if (items.length === 0) return [];
    const loggedAt = this.#now().getTime();
    const rows = new Map<string, Insertable<ShieldEventsTable>>();
    for (const { event, origin } of items) {
      if (!rows.has(event.id)) rows.set(event.id, eventRow(event, origin, loggedAt));
    }
    // In id order, so two transactions logging the same events never wait for each other in a cycle.
    const values = [...rows.values()].sort((a, b) => (a.event_id < b.event_id ? -1 : 1));
    const { logged, fresh, folded } = await this.#db.transaction().execute(async (trx) => {
      const inserted = await trx
        .insertInto('shield_events')
        .values(values)
        .onConflict((oc) => oc.column('event_id').doNothing())
        .returning(['seq', 'event_id'])
        .execute();
      const logged = new Map<string, LoggedEvent>();
      for (const { seq, event_id } of inserted) {
        logged.set(event_id, loggedEventOf({ ...rows.get(event_id)!, seq } as Selectable<ShieldEventsTable>));
      }
      const fresh = new Set(logged.keys());
      const known = [...rows.keys()].filter((id) => !fresh.has(id));
      if (known.length > 0) {
        const stored = await trx
          .selectFrom('shield_events')
          .selectAll()
          .where('event_id', 'in', known)
          .execute();
        for (const row of stored) logged.set(row.event_id, loggedEventOf(row));
      }
      const byDeployment = new Map<string, LoggedEvent[]>();
      for (const id of fresh) {
        const event = logged.get(id)!;
        if (event.deploymentId === '') continue;
        const list = byDeployment.get(event.deploymentId);
        if (list) list.push(event);
        else byDeployment.set(event.deploymentId, [event]);
      }
      return { logged, fresh, folded: await this.#fold(trx, byDeployment, false) };
    });
    for (const [id, folding] of folded) this.#remember(id, folding.commit);

    // Records of deployments that only had events logged before: as stored.
    const unchanged = [
      ...new Set(
        [...logged.values()].flatMap((e) =>
          e.deploymentId !== '' && !folded.has(e.deploymentId) ? [e.deploymentId] : [],
        ),
      ),
    ];
    const stored = new Map<string, UnifiedDeployment>();
    if (unchanged.length > 0) {
      const records = await this.#db
        .selectFrom('shield_deployments')
        .select(['id', 'record'])
        .where('id', 'in', unchanged)
        .execute();
      for (const row of records) {
        if (row.record !== '') stored.set(row.id, JSON.parse(row.record) as UnifiedDeployment);
      }
    }

    return items.map(({ event }) => {
      const loggedEvent = logged.get(event.id)!;
      const inserted = fresh.has(event.id);
      if (loggedEvent.deploymentId === '') return { logged: loggedEvent, inserted, changed: false };
      const folding = folded.get(loggedEvent.deploymentId);
      const record = folding ? folding.record : stored.get(loggedEvent.deploymentId);
      const ignored = folding?.ignored ?? record?.ignoredEvents ?? [];
      return {
        logged: loggedEvent,
        inserted,
        record,
        changed: inserted && folding?.record !== undefined,
        ignored: ignored.find((i) => i.eventId === loggedEvent.id),
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
    const inserted = await this.#db.transaction().execute(async (trx) => {
      const inserted = await trx
        .insertInto('shield_events')
        .values(rows)
        .onConflict((oc) => oc.column('event_id').doNothing())
        .returning('deployment_id')
        .execute();
      // These events are not folded: their records' fold states no longer cover the log.
      const ids = [...new Set(inserted.map((r) => r.deployment_id))].filter((id) => id !== '');
      if (ids.length > 0) {
        await trx
          .updateTable('shield_deployments')
          .set((eb) => ({ fold_state: null, revision: eb(eb.ref('revision'), '+', 1) }))
          .where('id', 'in', ids)
          .execute();
      }
      return inserted.length;
    });
    return inserted;
  }

  /** Recomputes one deployment's record from the log (all its events folded again). */
  async recompute(deploymentId: string): Promise<UnifiedDeployment | undefined> {
    const folding = await this.#db
      .transaction()
      .execute(
        async (trx) => (await this.#fold(trx, new Map([[deploymentId, []]]), true)).get(deploymentId)!,
      );
    this.#remember(deploymentId, folding.commit);
    return folding.record;
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
    this.#folds.clear();
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

  /**
   * Folds each deployment's new events into its record (all its logged events when `full`, when
   * they do not come in fold order, or when its fold state is missing) and writes the record, its
   * fold state and its service index. Runs inside the caller's transaction.
   */
  async #fold(
    trx: Transaction<Database>,
    newEvents: ReadonlyMap<string, LoggedEvent[]>,
    full: boolean,
  ): Promise<Map<string, Folding>> {
    const result = new Map<string, Folding>();
    const ids = [...newEvents.keys()].sort();
    if (ids.length === 0) return result;
    const now = this.#now().getTime();
    // Creates the rows or bumps their revisions, in id order: this transaction now holds their locks.
    const locked = await trx
      .insertInto('shield_deployments')
      .values(
        ids.map((id) =>
          placeholderRow(id, newEvents.get(id)![0] ? Date.parse(newEvents.get(id)![0]!.time) : now),
        ),
      )
      .onConflict((oc) =>
        oc
          .column('id')
          .doUpdateSet((eb) => ({ revision: eb(eb.ref('shield_deployments.revision'), '+', 1) })),
      )
      .returning(['id', 'revision'])
      .execute();
    const revisions = new Map(locked.map((r) => [r.id, Number(r.revision)]));

    const previous = new Map<string, { state?: FoldState; index?: ServiceIndex }>();
    const unknown: string[] = [];
    for (const id of ids) {
      // Taken out: a transaction that fails leaves nothing behind in memory.
      const cached = this.#folds.get(id);
      this.#folds.delete(id);
      if (cached && cached.revision + 1 === revisions.get(id)) previous.set(id, cached);
      else unknown.push(id);
    }
    if (unknown.length > 0) {
      const saved = await trx
        .selectFrom('shield_deployments')
        .select(['id', 'fold_state'])
        .where('id', 'in', unknown)
        .execute();
      for (const row of saved) previous.set(row.id, parseSaved(row.fold_state));
    }

    const states = new Map<string, FoldState>();
    const refold: string[] = [];
    for (const id of ids) {
      const state = full ? undefined : previous.get(id)?.state;
      const events = [...newEvents.get(id)!].sort(compareEvents);
      const inOrder =
        state !== undefined &&
        events.every((event) => {
          if (!foldsInOrder(state, event)) return false;
          foldStep(state, event);
          return true;
        });
      if (inOrder) states.set(id, state);
      else refold.push(id);
    }
    if (refold.length > 0) {
      const rows = await trx
        .selectFrom('shield_events')
        .selectAll()
        .where('deployment_id', 'in', refold)
        .execute();
      const logged = new Map<string, LoggedEvent[]>(refold.map((id) => [id, []]));
      for (const row of rows) logged.get(row.deployment_id)!.push(loggedEventOf(row));
      for (const [id, events] of logged) states.set(id, foldDeployment(id, events).state);
    }

    const written: Insertable<ShieldDeploymentsTable>[] = [];
    const services: Insertable<ShieldDeploymentServicesTable>[] = [];
    for (const id of ids) {
      const state = states.get(id)!;
      const record = recordOf(id, state);
      if (!record) {
        await trx.deleteFrom('shield_deployment_services').where('deployment_id', '=', id).execute();
        await trx.deleteFrom('shield_deployments').where('id', '=', id).execute();
        result.set(id, { record, ignored: [...state.ignored], commit: undefined });
        continue;
      }
      const index: ServiceIndex = {
        services: [...new Set(record.services)],
        environment: record.environment,
        sortAt: Date.parse(record.startedAt ?? record.lastEventAt),
      };
      const saved: SavedProjection = { fold: saveFoldState(state), index };
      written.push({
        id,
        project: record.project,
        version: record.version,
        environment: record.environment,
        strategy: record.strategy,
        status: record.status,
        phase: record.phase,
        correlation_id: record.correlationId,
        started_at: record.startedAt === null ? null : Date.parse(record.startedAt),
        finished_at: record.finishedAt === null ? null : Date.parse(record.finishedAt),
        sort_at: index.sortAt,
        updated_at: Date.parse(record.lastEventAt),
        record: JSON.stringify(record),
        fold_state: JSON.stringify(saved),
      });
      services.push(...(await this.#reindex(trx, id, previous.get(id)?.index, index)));
      result.set(id, {
        record,
        ignored: record.ignoredEvents,
        commit: { revision: revisions.get(id)!, state, index },
      });
    }
    if (written.length > 0) {
      // Every row exists (this transaction locked it): one statement updates them all.
      await trx
        .insertInto('shield_deployments')
        .values(written)
        .onConflict((oc) =>
          oc.column('id').doUpdateSet((eb) => {
            const columns = Object.keys(written[0]!).filter((c) => c !== 'id') as WrittenColumn[];
            return Object.fromEntries(columns.map((c) => [c, eb.ref(`excluded.${c}`)]));
          }),
        )
        .execute();
    }
    if (services.length > 0) {
      await trx
        .insertInto('shield_deployment_services')
        .values(services)
        .onConflict((oc) => oc.columns(['deployment_id', 'service']).doNothing())
        .execute();
    }
    return result;
  }

  /**
   * Brings a deployment's service index from `before` (unknown: rewritten whole) to `after`;
   * returns the rows to insert. A new event rarely changes the services, so usually nothing.
   */
  async #reindex(
    trx: Transaction<Database>,
    deploymentId: string,
    before: ServiceIndex | undefined,
    after: ServiceIndex,
  ): Promise<Insertable<ShieldDeploymentServicesTable>[]> {
    const row = (service: string) => ({
      deployment_id: deploymentId,
      service,
      environment: after.environment,
      sort_at: after.sortAt,
    });
    if (!before) {
      await trx.deleteFrom('shield_deployment_services').where('deployment_id', '=', deploymentId).execute();
      return after.services.map(row);
    }
    const removed = before.services.filter((s) => !after.services.includes(s));
    if (removed.length > 0) {
      await trx
        .deleteFrom('shield_deployment_services')
        .where('deployment_id', '=', deploymentId)
        .where('service', 'in', removed)
        .execute();
    }
    if (before.environment !== after.environment || before.sortAt !== after.sortAt) {
      await trx
        .updateTable('shield_deployment_services')
        .set({ environment: after.environment, sort_at: after.sortAt })
        .where('deployment_id', '=', deploymentId)
        .execute();
    }
    return after.services.filter((s) => !before.services.includes(s)).map(row);
  }

  /** Keeps a committed fold in memory (unless an older write finished after a newer one). */
  #remember(deploymentId: string, commit: CommittedFold | undefined): void {
    if (!commit) return;
    const current = this.#folds.get(deploymentId);
    if (current && current.revision >= commit.revision) return;
    this.#folds.delete(deploymentId);
    this.#folds.set(deploymentId, commit);
    if (this.#folds.size > FOLD_CACHE_LIMIT) this.#folds.delete(this.#folds.keys().next().value!);
  }
}

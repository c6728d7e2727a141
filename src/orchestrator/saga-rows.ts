import { type Kysely, PostgresAdapter, sql, type Transaction } from 'kysely';
import type { Database } from '../store/index.js';
import type { PublishedRecord, SagaState, StageState } from './state.js';

type Db = Kysely<Database> | Transaction<Database>;

/**
 * How a saga's state is stored so that one step costs O(1) writes whatever the plan's size: the
 * deployment row keeps the small core (gates, approvals, failure, rollback, warnings), each stage
 * is one row of `orchestrator_saga_stages` rewritten only when that stage changes, and each
 * published event one row of `orchestrator_saga_events`, appended once.
 *
 * In memory the state stays one {@link SagaState}; {@link loadSagaStates} puts it back together.
 */

/** The JSON of the deployment row's `state` column: the state without stages and events. */
export function coreJson(state: SagaState): string {
  const { stages: _stages, events: _events, ...core } = state;
  return JSON.stringify(core);
}

/** Ids per query, well under the parameter limits of both databases. */
const CHUNK = 500;

/** The whole states of deployment rows, by id: the core of each row with its stages and events. */
export async function loadSagaStates(
  db: Db,
  rows: readonly { id: string; state: string }[],
): Promise<Map<string, SagaState>> {
  const states = new Map<string, SagaState>();
  for (const row of rows) {
    const core = JSON.parse(row.state) as Partial<SagaState>;
    // `stages` and `events` appear inline only in a state built in memory before it was saved.
    states.set(row.id, { ...core, stages: core.stages ?? {}, events: core.events ?? [] } as SagaState);
  }
  const ids = [...states.keys()];
  for (let i = 0; i < ids.length; i += CHUNK) {
    const chunk = ids.slice(i, i + CHUNK);
    const stages = await db
      .selectFrom('orchestrator_saga_stages')
      .select(['deployment_id', 'stage', 'state'])
      .where('deployment_id', 'in', chunk)
      .orderBy('deployment_id')
      .orderBy('position')
      .execute();
    for (const row of stages)
      states.get(row.deployment_id)!.stages[row.stage] = JSON.parse(row.state) as StageState;
    const events = await db
      .selectFrom('orchestrator_saga_events')
      .select(['deployment_id', 'record'])
      .where('deployment_id', 'in', chunk)
      .orderBy('deployment_id')
      .orderBy('seq')
      .execute();
    for (const row of events)
      states.get(row.deployment_id)!.events.push(JSON.parse(row.record) as PublishedRecord);
  }
  return states;
}

/** The whole state of one deployment row. */
export async function loadSagaState(db: Db, row: { id: string; state: string }): Promise<SagaState> {
  return (await loadSagaStates(db, [row])).get(row.id)!;
}

/** What changed in a state since the last write: the rows to write and, once written, how to remember it. */
export interface SagaChanges {
  core: string;
  stages: { stage: string; position: number; state: string }[];
  events: { seq: number; record: string }[];
  /** Call after the transaction that wrote the changes committed. */
  written(): void;
}

/**
 * Tracks which stage and event rows of one deployment are written, so that a save writes only
 * the stages that changed and the events not yet written. Saves must not overlap (the saga
 * serializes them): the changes are computed against the last write that committed.
 */
export class SagaRowTracker {
  private readonly stageJson = new Map<string, string>();
  private readonly positions = new Map<string, number>();
  private eventsWritten: number;

  /** `state` as loaded from the store: everything in it is written already. */
  constructor(state: SagaState) {
    for (const [name, stage] of Object.entries(state.stages)) {
      this.positions.set(name, this.positions.size);
      this.stageJson.set(name, JSON.stringify(stage));
    }
    this.eventsWritten = state.events.length;
  }

  changes(state: SagaState): SagaChanges {
    const stages: SagaChanges['stages'] = [];
    let added = 0;
    for (const [name, stage] of Object.entries(state.stages)) {
      const json = JSON.stringify(stage);
      if (this.stageJson.get(name) === json) continue;
      const position = this.positions.get(name) ?? this.positions.size + added++;
      stages.push({ stage: name, position, state: json });
    }
    const events = state.events
      .slice(this.eventsWritten)
      .map((event, i) => ({ seq: this.eventsWritten + i, record: JSON.stringify(event) }));
    return {
      core: coreJson(state),
      stages,
      events,
      written: () => {
        for (const stage of stages) {
          if (!this.positions.has(stage.stage)) this.positions.set(stage.stage, stage.position);
          this.stageJson.set(stage.stage, stage.state);
        }
        this.eventsWritten += events.length;
      },
    };
  }
}

/**
 * Writes a save: the row's core, only while `update.owner` still owns it, and the stage and event
 * rows that changed. One statement on PostgreSQL ({@link saveInOneStatement}); otherwise, and when
 * `inTransaction` must run with it (the final save's ledger), one transaction. Resolves false when
 * the row is no longer owned (nothing is written then).
 */
export async function saveSagaState(
  db: Kysely<Database>,
  update: SagaRowUpdate,
  changes: SagaChanges,
  inTransaction?: (trx: Transaction<Database>) => Promise<void>,
): Promise<boolean> {
  if (!inTransaction && isPostgres(db)) return saveInOneStatement(db, update, changes);
  const write = async (target: Db) => {
    const result = await target
      .updateTable('orchestrator_deployments')
      .set({
        status: update.status,
        phase: update.phase,
        state: changes.core,
        updated_at: update.updatedAt,
        ...(update.final ? { finished_at: update.updatedAt, owner: null, lease_until: 0 } : {}),
      })
      .where('id', '=', update.id)
      .where('owner', '=', update.owner)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) !== 1) return false;
    await writeSagaRows(target, update.id, changes);
    return true;
  };
  if (!inTransaction && changes.stages.length === 0 && changes.events.length === 0) return write(db);
  return db.transaction().execute(async (trx) => {
    if (!(await write(trx))) return false;
    await inTransaction?.(trx);
    return true;
  });
}

/** Writes the stage and event rows of `changes` (the caller writes the core in the same transaction). */
async function writeSagaRows(db: Db, deploymentId: string, changes: SagaChanges): Promise<void> {
  if (changes.stages.length > 0) {
    await db
      .insertInto('orchestrator_saga_stages')
      .values(changes.stages.map((s) => ({ deployment_id: deploymentId, ...s })))
      .onConflict((oc) =>
        oc.columns(['deployment_id', 'stage']).doUpdateSet((eb) => ({ state: eb.ref('excluded.state') })),
      )
      .execute();
  }
  if (changes.events.length > 0) {
    await db
      .insertInto('orchestrator_saga_events')
      .values(changes.events.map((e) => ({ deployment_id: deploymentId, ...e })))
      // A save retried after a commit whose answer was lost writes the same rows again.
      .onConflict((oc) => oc.columns(['deployment_id', 'seq']).doNothing())
      .execute();
  }
}

/** Whether the store is PostgreSQL, where a save is one statement ({@link saveInOneStatement}). */
function isPostgres(db: Kysely<Database>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/** The deployment row's columns a save sets. */
export interface SagaRowUpdate {
  id: string;
  owner: string;
  status: string;
  phase: string;
  updatedAt: number;
  /** Ends the deployment: sets `finished_at` and gives up the lease. */
  final: boolean;
}

/**
 * Writes a save on PostgreSQL in one statement — one round trip instead of a transaction of
 * four: the row's core, only while `owner` still owns it, and, only then, the stage and event rows
 * (they select from the updated row, so a lost lease writes nothing). Resolves false when the row
 * is no longer owned.
 */
export async function saveInOneStatement(
  db: Kysely<Database>,
  update: SagaRowUpdate,
  changes: SagaChanges,
): Promise<boolean> {
  const finished = update.final
    ? sql`, finished_at = ${update.updatedAt}, owner = null, lease_until = 0`
    : sql``;
  const stages =
    changes.stages.length === 0
      ? sql``
      : sql`, stages as (
          insert into orchestrator_saga_stages (deployment_id, stage, position, state)
          select owned.id, v.stage, v.position, v.state from owned, (values ${sql.join(
            changes.stages.map((s) => sql`(${s.stage}, ${s.position}::integer, ${s.state})`),
          )}) as v(stage, position, state)
          on conflict (deployment_id, stage) do update set state = excluded.state
        )`;
  const events =
    changes.events.length === 0
      ? sql``
      : sql`, events as (
          insert into orchestrator_saga_events (deployment_id, seq, record)
          select owned.id, v.seq, v.record from owned, (values ${sql.join(
            changes.events.map((e) => sql`(${e.seq}::integer, ${e.record})`),
          )}) as v(seq, record)
          on conflict (deployment_id, seq) do nothing
        )`;
  const result = await sql<{ owned: string }>`
    with owned as (
      update orchestrator_deployments
      set status = ${update.status}, phase = ${update.phase}, state = ${changes.core},
        updated_at = ${update.updatedAt}${finished}
      where id = ${update.id} and owner = ${update.owner}
      returning id
    )${stages}${events}
    select count(*) as owned from owned`.execute(db);
  return Number(result.rows[0]?.owned ?? 0) === 1;
}

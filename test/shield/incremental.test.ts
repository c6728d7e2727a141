import { randomUUID } from 'node:crypto';
import type {
  KyselyPlugin,
  PluginTransformQueryArgs,
  PluginTransformResultArgs,
  QueryResult,
  RootOperationNode,
  Selectable,
  UnknownRow,
} from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { OutgoingEvent, Publisher } from '../../src/bus/types.js';
import type { DeploymentEvent } from '../../src/events/envelope.js';
import {
  ApprovalOutcome,
  DeploymentStatus,
  ExecutionStatus,
  ValidationResult,
} from '../../src/events/index.js';
import { ORCHESTRATOR_SOURCE } from '../../src/events/sources.js';
import { silentLogger } from '../../src/runtime/logging.js';
import { eventRow, loggedEventOf } from '../../src/shield/event-log.js';
import {
  compareEvents,
  createShieldProjection,
  emptyFoldState,
  foldDeployment,
  foldStep,
  loadFoldState,
  recordOf,
  ShieldStore,
  saveFoldState,
} from '../../src/shield/index.js';
import type { ShieldEventsTable } from '../../src/shield/store/schema.js';
import { openStore, type Store } from '../../src/store/index.js';
import { BACKENDS, postgresBackend, type TestDatabase } from '../store/backends.js';
import { testHandlerContext } from '../support/handler-context.js';
import { approvalEvents, asDeploymentEvents, deploymentScenario, shuffled } from './fixtures.js';

const logger = silentLogger();
const publisher: Publisher = {
  publish: async () => {
    throw new Error('the projection publishes nothing');
  },
  publishBatch: async () => {
    throw new Error('the projection publishes nothing');
  },
  close: async () => {},
};
const origin = (n: number) => ({ stream: 'materi:events:test', entryId: `${n}-0` });

/** Every event of a deployment of `count` stages, each stage deploying a service of its own. */
function manyStages(id: string, count: number): OutgoingEvent[] {
  const correlationId = randomUUID();
  const stages = Array.from({ length: count }, (_, i) => `s${i}`);
  const services = stages.map((s) => `svc-${s}`);
  let t = Date.parse('2026-03-02T10:00:00.000Z');
  const events: OutgoingEvent[] = [];
  const add = (
    type: string,
    data: Record<string, unknown>,
    causationId = '',
    source = ORCHESTRATOR_SOURCE,
  ) => {
    t += 5;
    const event: OutgoingEvent = {
      id: randomUUID(),
      type,
      time: new Date(t),
      correlationId,
      causationId,
      deploymentId: id,
      source,
      data: { deploymentId: id, ...data },
    };
    events.push(event);
    return event.id!;
  };
  const started = add('deployment:started', {
    version: 'v2',
    environment: 'staging',
    services,
    stages,
    project: 'p',
  });
  const validation = add('validation:started', { version: 'v2', environment: 'staging' }, started);
  add(
    'validation:completed',
    { result: ValidationResult.PASSED, executionStatus: ExecutionStatus.SUCCEEDED },
    validation,
    'materi/worker-validator',
  );
  for (const [i, stage] of stages.entries()) {
    add(`deployment:stage:${stage}:started`, { stage, services: [services[i]!] });
    add(`deployment:stage:${stage}:completed`, {
      stage,
      status: DeploymentStatus.SUCCESS,
      services: [services[i]!],
    });
  }
  add('deployment:completed', { status: DeploymentStatus.SUCCESS, services, version: 'v2' });
  return events;
}

/**
 * The awkward cases of trust and order: a gate result published before its request (clocks of two
 * processes), a second answer to the same request, a lifecycle event from another source, and an
 * approval answered after a restart.
 */
function awkward(id: string): OutgoingEvent[] {
  const events = deploymentScenario({ id, outcome: 'rollback' });
  const request = events.find((e) => e.type === 'validation:started')!;
  const result = events.find((e) => e.type === 'validation:completed')!;
  result.time = new Date(request.time!.getTime() - 50);
  events.push({
    ...result,
    id: randomUUID(),
    time: new Date(result.time.getTime() + 10),
    source: 'materi/worker-validator-2',
    data: { ...(result.data as object), message: 'second opinion' },
  });
  events.push({
    ...events.find((e) => e.type.startsWith('deployment:stage:'))!,
    id: randomUUID(),
    source: 'someone/else',
  });
  const correlationId = events[0]!.correlationId!;
  events.push(
    ...approvalEvents({
      id,
      correlationId,
      at: new Date(request.time!.getTime() + 20),
      outcome: ApprovalOutcome.APPROVED,
      by: 'ops',
    }),
  );
  return events;
}

function scenarios(): { id: string; events: DeploymentEvent[] }[] {
  return [
    { id: 'inc-success', events: asDeploymentEvents(deploymentScenario({ id: 'inc-success' })) },
    { id: 'inc-awkward', events: asDeploymentEvents(awkward('inc-awkward')) },
    { id: 'inc-stages', events: asDeploymentEvents(manyStages('inc-stages', 12)) },
  ];
}

/** Counts the rows inserted into each table, and the insert statements; can fail an event's insert. */
class RowCounter implements KyselyPlugin {
  readonly byTable = new Map<string, number>();
  readonly statements = new Map<string, number>();
  /** An insert that returns this event id (as inserted) fails. */
  poison: string | undefined;
  readonly #tables = new WeakMap<object, string>();
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    const node = args.node as { kind: string; into?: { table: { identifier: { name: string } } } };
    if (node.kind === 'InsertQueryNode' && node.into)
      this.#tables.set(args.queryId, node.into.table.identifier.name);
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    const table = this.#tables.get(args.queryId);
    if (table) {
      this.statements.set(table, (this.statements.get(table) ?? 0) + 1);
      if (this.poison && args.result.rows.some((r) => r.event_id === this.poison)) {
        throw new Error('disk full');
      }
      const rows = Number(args.result.numAffectedRows ?? args.result.rows.length);
      this.byTable.set(table, (this.byTable.get(table) ?? 0) + rows);
    }
    return args.result;
  }
}

describe('the fold state', () => {
  it('folds event by event, saved and loaded between events, to the record of all the events', () => {
    for (const { id, events } of scenarios()) {
      const logged = events.map((event, i) =>
        loggedEventOf({ ...eventRow(event, origin(i), 0), seq: i + 1 } as Selectable<ShieldEventsTable>),
      );
      const full = foldDeployment(id, logged);
      const sorted = [...logged].sort(compareEvents);
      let state = emptyFoldState();
      expect(recordOf(id, state)).toBeUndefined();
      for (const event of sorted) {
        foldStep(state, event);
        state = loadFoldState(JSON.parse(JSON.stringify(saveFoldState(state))))!;
      }
      // In time order, the result published before its request is folded before the request is
      // known; a store refolds then (the request is an orphan's). Without such a result, equal.
      if (id !== 'inc-awkward') expect(recordOf(id, state)).toEqual(full.record);
      expect(loadFoldState({ v: 0 })).toBeUndefined();
      expect(loadFoldState(null)).toBeUndefined();
    }
  });
});

describe.each(BACKENDS)('Shield incremental fold on $dialect', (backend) => {
  let database: TestDatabase;
  let store: Store;
  let shield: ShieldStore;

  beforeAll(async () => {
    database = await backend.create();
    store = await openStore({ databaseUrl: database.databaseUrl, dataDir: database.dataDir, logger });
    shield = new ShieldStore(store.db);
  });
  afterAll(async () => {
    await store.close();
    await database.drop();
  });
  beforeEach(async () => {
    await shield.clear();
  });

  /** The record as stored must be the fold of every event logged for the deployment. */
  async function expectFullFold(id: string): Promise<void> {
    const expected = foldDeployment(id, await shield.timeline(id)).record;
    expect(await shield.getDeployment(id)).toEqual(expected);
  }

  it('keeps the record equal to the fold of all the events, in order, shuffled and duplicated', async () => {
    for (const { id, events } of scenarios()) {
      const orders = [
        [...events].sort((a, b) => a.time.getTime() - b.time.getTime()),
        ...[1, 2, 3, 4].map((seed) => shuffled(events, seed)),
        shuffled([...events, ...events.filter((_, i) => i % 3 === 0)], 5),
      ];
      let reference: unknown;
      for (const order of orders) {
        await shield.clear();
        for (const [n, event] of order.entries()) {
          await shield.apply(event, origin(n));
          await expectFullFold(id);
        }
        const record = await shield.getDeployment(id);
        expect(record?.eventCount).toBe(events.length);
        reference ??= record;
        expect(record).toEqual(reference);
      }
    }
  });

  it('keeps it equal when events come in batches of any mix, redeliveries included', async () => {
    const all = scenarios().flatMap((s) => s.events);
    for (const seed of [11, 12, 13]) {
      await shield.clear();
      const order = shuffled([...all, ...all.filter((_, i) => (i + seed) % 4 === 0)], seed);
      for (let i = 0; i < order.length; ) {
        const size = 1 + ((i * 7 + seed) % 9);
        const batch = order.slice(i, i + size).map((event, k) => ({ event, origin: origin(i + k) }));
        const applied = await shield.applyBatch(batch);
        expect(applied.map((a) => a.logged.id)).toEqual(batch.map((b) => b.event.id));
        i += size;
      }
      for (const { id } of scenarios()) await expectFullFold(id);
    }
  });

  it('indexes each service of a 50-stage deployment once, writing each row once', async () => {
    const events = asDeploymentEvents(manyStages('inc-fifty', 50));
    const counter = new RowCounter();
    const counted = new ShieldStore(store.db.withPlugin(counter));
    for (const [n, event] of events.entries()) await counted.apply(event, origin(n));
    const rows = await store.db
      .selectFrom('shield_deployment_services')
      .select(['service'])
      .where('deployment_id', '=', 'inc-fifty')
      .execute();
    expect(rows).toHaveLength(50);
    expect(new Set(rows.map((r) => r.service)).size).toBe(50);
    expect(counter.byTable.get('shield_deployment_services')).toBe(50);
    expect((await shield.listDeployments({ service: 'svc-s49' })).items.map((d) => d.id)).toEqual([
      'inc-fifty',
    ]);
    await expectFullFold('inc-fifty');
  });

  it('writes the events in flight together, and an event that cannot be written fails alone', async () => {
    const events = scenarios().flatMap((s) => s.events);
    const counter = new RowCounter();
    counter.poison = events[7]!.id;
    const handle = createShieldProjection({ db: store.db.withPlugin(counter), logger });
    const outcomes = await Promise.allSettled(
      events.map((event, n) =>
        handle(
          event,
          testHandlerContext({ stream: 'materi:events:test', entryId: `${n}-0`, group: 'shield', publisher }),
        ),
      ),
    );
    expect(outcomes.filter((o) => o.status === 'rejected')).toHaveLength(1);
    expect(outcomes[7]!.status).toBe('rejected');
    // One event alone, then the rest together, which failed: then one by one.
    expect(counter.statements.get('shield_events')).toBe(1 + 1 + (events.length - 1));
    expect(counter.byTable.get('shield_events')).toBe(events.length - 1);
    for (const { id } of scenarios()) await expectFullFold(id);
    await shield.apply(events[7]!, origin(99));
    expect(await shield.eventCount()).toBe(events.length);
    for (const { id } of scenarios()) await expectFullFold(id);
  });

  it('writes concurrent events in a few transactions', async () => {
    const events = scenarios().flatMap((s) => s.events);
    const counter = new RowCounter();
    const handle = createShieldProjection({ db: store.db.withPlugin(counter), logger });
    await Promise.all(
      events.map((event, n) =>
        handle(
          event,
          testHandlerContext({ stream: 'materi:events:test', entryId: `${n}-0`, group: 'shield', publisher }),
        ),
      ),
    );
    // The first alone, then every one that came meanwhile.
    expect(counter.statements.get('shield_events')).toBe(2);
    expect(counter.byTable.get('shield_events')).toBe(events.length);
    for (const { id } of scenarios()) await expectFullFold(id);
  });

  it('folds all the events again when the fold state is missing, old or stale', async () => {
    const { id, events } = scenarios()[0]!;
    const sorted = [...events].sort((a, b) => a.time.getTime() - b.time.getTime());
    const [first, second, third, ...rest] = sorted;
    await shield.apply(first!, origin(1));
    // Missing (a row from before the fold state) and of another version.
    await store.db.updateTable('shield_deployments').set({ fold_state: null }).execute();
    await shield.apply(second!, origin(2));
    await expectFullFold(id);
    await store.db
      .updateTable('shield_deployments')
      .set({ fold_state: '{"fold":{"v":0},"index":{}}' })
      .execute();
    await shield.apply(third!, origin(3));
    await expectFullFold(id);
    // Logged without folding (a rebuild): the next event folds them too.
    await shield.logEvents(rest.slice(0, 3).map((event, n) => ({ event, origin: origin(10 + n) })));
    await shield.apply(rest[3]!, origin(20));
    await expectFullFold(id);
    // Another store wrote meanwhile: this one's fold in memory is stale, and not used.
    await new ShieldStore(store.db).apply(rest[4]!, origin(21));
    for (const [n, event] of rest.slice(5).entries()) await shield.apply(event, origin(30 + n));
    await expectFullFold(id);
    expect((await shield.getDeployment(id))?.eventCount).toBe(events.length);
  });
});

describe('Shield incremental fold with two stores on one PostgreSQL database', () => {
  let database: TestDatabase;
  let stores: Store[];

  beforeAll(async () => {
    database = await postgresBackend.create();
    stores = [];
    for (let i = 0; i < 2; i++) {
      stores.push(await openStore({ databaseUrl: database.databaseUrl, dataDir: database.dataDir, logger }));
    }
  });
  afterAll(async () => {
    for (const store of stores) await store.close();
    await database.drop();
  });

  it('converges to the fold of all the events when both apply at once', async () => {
    const [a, b] = stores.map((s) => new ShieldStore(s.db)) as [ShieldStore, ShieldStore];
    const all = scenarios();
    const events = all.flatMap((s) => s.events);
    for (const seed of [21, 22, 23]) {
      await a.clear();
      // Each store gets about two thirds of the events (some both), in its own order, in batches.
      const toA = shuffled(
        events.filter((_, i) => (i + seed) % 3 !== 0),
        seed,
      );
      const toB = shuffled(
        events.filter((_, i) => (i + seed) % 3 !== 1),
        seed + 100,
      );
      const run = async (shield: ShieldStore, list: DeploymentEvent[], size: number) => {
        for (let i = 0; i < list.length; i += size) {
          await shield.applyBatch(
            list.slice(i, i + size).map((event, k) => ({ event, origin: origin(i + k) })),
          );
        }
      };
      await Promise.all([run(a, toA, 3), run(b, toB, 1), run(a, toA.slice().reverse(), 2)]);
      for (const { id } of all) {
        const expected = foldDeployment(id, await a.timeline(id)).record;
        expect(expected?.eventCount).toBe(all.find((s) => s.id === id)!.events.length);
        expect(await a.getDeployment(id)).toEqual(expected);
        expect(await b.getDeployment(id)).toEqual(expected);
      }
    }
  });
});

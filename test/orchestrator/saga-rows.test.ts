import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSagaRows } from '../../src/orchestrator/migrations.js';
import { loadSagaState, SagaRowTracker, saveInOneStatement } from '../../src/orchestrator/saga-rows.js';
import { emptyState, type SagaState, type StageState } from '../../src/orchestrator/state.js';
import { silentLogger } from '../../src/runtime/logging.js';
import { openStore } from '../../src/store/index.js';
import { MIGRATIONS } from '../../src/store/migrations/index.js';
import { BACKENDS, postgresBackend } from '../store/backends.js';
import { eventually } from '../support/redis.js';
import { commandPlan, type OrchestratorHarness, openOrchestratorHarness } from './support/harness.js';

function stage(name: string, status: StageState['status'] = 'running'): StageState {
  return { status, services: [`${name}-svc`], startedAt: 1, attempts: 1, artifacts: [] };
}

function stateWith(stages: number, events: number): SagaState {
  const state = emptyState();
  for (let i = 0; i < stages; i++) state.stages[`s${i}`] = stage(`s${i}`, 'succeeded');
  for (let i = 0; i < events; i++) state.events.push({ id: `e${i}`, type: 't', time: 'now', data: {} });
  return state;
}

function deploymentRow(id: string, state: string, owner: string | null) {
  return {
    id,
    project: 'shop',
    environment: 'staging',
    version: 'v1',
    previous_version: null,
    correlation_id: 'c',
    status: owner ? 'RUNNING' : 'SUCCESS',
    phase: owner ? 'stages' : 'done',
    plan_text: '',
    plan_source: 'plan.yaml',
    plan_base_dir: '.',
    vars: '{}',
    state,
    triggered_by: 'ana',
    owner,
    lease_until: 0,
    cancel_requested: 0,
    cancel_rollback: 0,
    cancelled_by: null,
    reason: null,
    created_at: 1,
    updated_at: 1,
    finished_at: owner ? null : 1,
  };
}

describe('saga rows: what a save writes', () => {
  it('writes only the stage that changed and the events not yet written, whatever the plan size', () => {
    for (const size of [3, 50]) {
      const state = stateWith(size, size * 4);
      const tracker = new SagaRowTracker(state);
      const none = tracker.changes(state);
      expect([none.stages.length, none.events.length]).toEqual([0, 0]);

      state.stages.s1!.status = 'rolled_back';
      state.events.push({ id: 'next', type: 't', time: 'now', data: {} });
      const changes = tracker.changes(state);
      expect(changes.stages.map((s) => s.stage)).toEqual(['s1']);
      expect(changes.stages[0]!.position).toBe(1);
      expect(changes.events).toEqual([{ seq: size * 4, record: JSON.stringify(state.events.at(-1)) }]);
      // The core row carries neither stages nor events, so its size does not grow with the plan.
      expect(JSON.parse(changes.core)).toEqual({ started: false, gates: {}, warnings: [] });
      changes.written();
      expect(tracker.changes(state).stages).toEqual([]);
      expect(tracker.changes(state).events).toEqual([]);
    }
  });

  it('writes again what a save that failed did not write', () => {
    const state = stateWith(2, 1);
    const tracker = new SagaRowTracker(state);
    state.stages.new = stage('new');
    state.events.push({ id: 'e1', type: 't', time: 'now', data: {} });
    const failed = tracker.changes(state);
    expect(failed.stages.map((s) => [s.stage, s.position])).toEqual([['new', 2]]);
    // No written(): the transaction rolled back.
    const retried = tracker.changes(state);
    expect(retried.stages.map((s) => [s.stage, s.position])).toEqual([['new', 2]]);
    expect(retried.events.map((e) => e.seq)).toEqual([1]);
  });
});

describe.each(BACKENDS)('saga rows on $dialect', (backend) => {
  it('the migration moves the stages and events of existing deployments out of the state column', async () => {
    const database = await backend.create();
    const logger = silentLogger();
    const before = await openStore({
      ...database,
      logger,
      migrations: MIGRATIONS.filter((m) => m.name < createSagaRows.name),
    });
    const legacy = stateWith(3, 5);
    legacy.gates.validation = { requestId: 'r', requestedAt: 1, deadlineAt: 2, verdict: 'PASSED' };
    try {
      await before.db
        .insertInto('orchestrator_deployments')
        .values(deploymentRow('dep-legacy', JSON.stringify(legacy), null))
        .execute();
    } finally {
      await before.close();
    }
    const after = await openStore({ ...database, logger });
    try {
      const row = await after.db
        .selectFrom('orchestrator_deployments')
        .select(['id', 'state'])
        .where('id', '=', 'dep-legacy')
        .executeTakeFirstOrThrow();
      expect(JSON.parse(row.state)).not.toHaveProperty('stages');
      expect(JSON.parse(row.state)).not.toHaveProperty('events');
      expect(await loadSagaState(after.db, row)).toEqual(legacy);
    } finally {
      await after.close();
      await database.drop();
    }
  });
});

describe('saga rows on postgres: a save in one statement', () => {
  it('writes the core, the stages and the events only while the instance owns the row', async () => {
    const database = await postgresBackend.create();
    const store = await openStore({ ...database, logger: silentLogger() });
    try {
      await store.db
        .insertInto('orchestrator_deployments')
        .values(deploymentRow('dep-1', '{}', 'me'))
        .execute();
      const state = stateWith(2, 3);
      const update = {
        id: 'dep-1',
        owner: 'me',
        status: 'RUNNING',
        phase: 'stages',
        updatedAt: 5,
        final: false,
      };
      const tracker = new SagaRowTracker(emptyState());
      const first = tracker.changes(state);
      expect(await saveInOneStatement(store.db, update, first)).toBe(true);
      first.written();
      const row = await store.db
        .selectFrom('orchestrator_deployments')
        .select(['id', 'state', 'updated_at'])
        .where('id', '=', 'dep-1')
        .executeTakeFirstOrThrow();
      expect(Number(row.updated_at)).toBe(5);
      expect(await loadSagaState(store.db, row)).toEqual(state);

      // Another instance took the deployment over: nothing of this save lands.
      await store.db.updateTable('orchestrator_deployments').set({ owner: 'other' }).execute();
      state.stages.s0!.status = 'failed';
      state.events.push({ id: 'late', type: 't', time: 'now', data: {} });
      expect(await saveInOneStatement(store.db, { ...update, updatedAt: 9 }, tracker.changes(state))).toBe(
        false,
      );
      const after = await store.db
        .selectFrom('orchestrator_deployments')
        .select(['id', 'state', 'updated_at'])
        .where('id', '=', 'dep-1')
        .executeTakeFirstOrThrow();
      expect(Number(after.updated_at)).toBe(5);
      const stored = await loadSagaState(store.db, after);
      expect(stored.stages.s0!.status).toBe('succeeded');
      expect(stored.events).toHaveLength(3);

      // The final save gives the lease up.
      await store.db.updateTable('orchestrator_deployments').set({ owner: 'me' }).execute();
      expect(await saveInOneStatement(store.db, { ...update, final: true }, tracker.changes(state))).toBe(
        true,
      );
      const ended = await store.db
        .selectFrom('orchestrator_deployments')
        .select(['owner', 'finished_at'])
        .where('id', '=', 'dep-1')
        .executeTakeFirstOrThrow();
      expect({ owner: ended.owner, finishedAt: Number(ended.finished_at) }).toEqual({
        owner: null,
        finishedAt: 5,
      });
    } finally {
      await store.close();
      await database.drop();
    }
  });
});

describe('saga rows through a deployment', () => {
  let h: OrchestratorHarness;
  let log: string;
  beforeEach(async () => {
    h = await openOrchestratorHarness();
    log = path.join(h.workdir, 'actions.log');
    await writeFile(log, '');
  });
  afterEach(async () => {
    await h.close();
  });

  it('records a published event before a wait even though its save is put off for the next step', async () => {
    h.answers.validation = 'silent';
    const orchestrator = await h.orchestrator();
    const submitted = await orchestrator.submit({
      planText: commandPlan({ log, validationTimeout: '60s' }),
      planSource: 'plan.yaml',
      version: 'v1',
      triggeredBy: 'ana',
    });
    // Nothing follows the request while the gate waits: the record is written by the save that
    // starts before the wait, not by a later step.
    const stored = await eventually(async () => {
      const row = await h.store.db
        .selectFrom('orchestrator_saga_events')
        .select('record')
        .where('deployment_id', '=', submitted.id)
        .orderBy('seq')
        .execute();
      const types = row.map((r) => (JSON.parse(r.record) as { type: string }).type);
      return types.includes('validation:started') ? types : undefined;
    });
    expect(stored).toEqual(['deployment:started', 'validation:started']);
    await orchestrator.cancel(submitted.id, { by: 'test' });
    await orchestrator.waitFor(submitted.id, 30_000);
  });

  it('parallel stages saving at once leave every stage and every published event stored, in order', async () => {
    const names = Array.from({ length: 12 }, (_, i) => `p${i}`);
    const orchestrator = await h.orchestrator();
    const submitted = await orchestrator.submit({
      planText: commandPlan({ log, stages: names.map((name) => ({ name, deploy: 'true' })) }),
      planSource: 'plan.yaml',
      version: 'v1',
      triggeredBy: 'ana',
    });
    const done = await orchestrator.waitFor(submitted.id, 60_000);
    expect(done.status).toBe('SUCCESS');
    expect(Object.keys(done.state.stages).sort()).toEqual([...names].sort());
    expect(Object.values(done.state.stages).map((s) => s.status)).toEqual(names.map(() => 'succeeded'));
    // What the saga itself published (the gate results come from the harness's workers).
    const results = new Set(['validation:completed', 'dependency:check:completed', 'health:check:completed']);
    const published = (await h.events())
      .filter((e) => e.deploymentId === submitted.id && !results.has(e.type))
      .map((e) => e.id);
    expect(new Set(done.state.events.map((e) => e.id))).toEqual(new Set(published));
    expect(done.state.events).toHaveLength(published.length);

    const stageRows = await h.store.db
      .selectFrom('orchestrator_saga_stages')
      .select(['stage', 'position'])
      .where('deployment_id', '=', submitted.id)
      .orderBy('position')
      .execute();
    expect(stageRows.map((r) => r.stage)).toEqual(Object.keys(done.state.stages));
    expect(new Set(stageRows.map((r) => r.position)).size).toBe(names.length);
    const eventRows = await h.store.db
      .selectFrom('orchestrator_saga_events')
      .select('seq')
      .where('deployment_id', '=', submitted.id)
      .orderBy('seq')
      .execute();
    expect(eventRows.map((r) => r.seq)).toEqual(published.map((_, i) => i));
  }, 90_000);
});

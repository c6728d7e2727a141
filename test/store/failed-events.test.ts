import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BadInputError, ConflictError, NotFoundError } from '../../src/errors/index.js';
import { silentLogger } from '../../src/runtime/logging.js';
import {
  type DeadLetterRecord,
  FailedEventStore,
  failedEventId,
  openStore,
  type Store,
} from '../../src/store/index.js';
import { BACKENDS, type TestDatabase } from './backends.js';

const PREFIX = 'materi:events:deployment';
const T0 = Date.parse('2026-03-04T05:06:07.891Z');

let entrySequence = 0;

/** A dead letter as the bus writes it; `minutes` after T0, with a fresh entry id unless given. */
function deadLetter(overrides: Partial<DeadLetterRecord> & { minutes?: number } = {}): DeadLetterRecord {
  const { minutes = 0, ...rest } = overrides;
  entrySequence += 1;
  const at = new Date(T0 + minutes * 60_000);
  return {
    dlqEntryId: `${T0 + minutes * 60_000}-${entrySequence}`,
    sourceStream: `${PREFIX}:health:check:started`,
    entryId: `${T0 - 1000}-${entrySequence}`,
    eventId: `6f1c0a2e-0000-4000-8000-${String(entrySequence).padStart(12, '0')}`,
    eventType: 'health:check:started',
    group: 'printery-health-monitor',
    consumer: 'printery-health-monitor:host-a:4242:0',
    attempts: 5,
    error: 'health endpoint https://api.example.test/healthz answered 503',
    stack: 'Error: health endpoint answered 503\n    at check (health.ts:10:5)',
    fields: {
      id: 'evt-1',
      type: 'health:check:started',
      data: '{"deploymentId":"d-1","checks":[{"name":"api"}]}',
      note: 'ünïcödé "quoted" \\ backslash',
    },
    correlationId: 'corr-1',
    deploymentId: 'd-1',
    firstFailedAt: new Date(at.getTime() - 4_000),
    lastFailedAt: at,
    ...rest,
  };
}

describe.each(BACKENDS)('failed events on $dialect', (backend) => {
  let database: TestDatabase;
  let store: Store;
  let now: Date;
  let failedEvents: FailedEventStore;

  beforeAll(async () => {
    database = await backend.create();
    store = await openStore({
      databaseUrl: database.databaseUrl,
      dataDir: database.dataDir,
      logger: silentLogger(),
    });
  });
  afterAll(async () => {
    await store?.close();
    await database?.drop();
  });
  beforeEach(async () => {
    await store.db.deleteFrom('failed_events').execute();
    now = new Date(T0 + 3_600_000);
    failedEvents = new FailedEventStore(store.db, { now: () => now });
  });

  it('records a dead letter with every field as the bus gave it', async () => {
    const letter = deadLetter();
    const recorded = await failedEvents.record(letter);

    expect(recorded).toEqual({
      ...letter,
      id: failedEventId(letter.group, letter.sourceStream, letter.entryId),
      status: 'dead',
      replayCount: 0,
      createdAt: now,
    });
    expect(await failedEvents.get(recorded.id)).toEqual(recorded);
  });

  it('round-trips timestamps to the millisecond', async () => {
    const instants = [
      '1969-12-31T23:59:59.999Z',
      '1970-01-01T00:00:00.001Z',
      '2026-11-29T19:35:14.007Z',
      '2038-01-19T03:14:08.999Z',
      '9999-12-31T23:59:59.999Z',
    ].map((text) => new Date(text));
    for (const [i, instant] of instants.entries()) {
      now = new Date(instant.getTime() + 1);
      const recorded = await failedEvents.record(
        deadLetter({ firstFailedAt: new Date(instant.getTime() - 1), lastFailedAt: instant, group: `g${i}` }),
      );
      const read = await failedEvents.get(recorded.id);
      expect(read!.firstFailedAt.toISOString()).toBe(new Date(instant.getTime() - 1).toISOString());
      expect(read!.lastFailedAt.toISOString()).toBe(instant.toISOString());
      expect(read!.createdAt.getTime()).toBe(instant.getTime() + 1);
    }
    now = new Date('2027-02-03T04:05:06.789Z');
    const [third] = await failedEvents.list({ group: 'g2' });
    const replayed = await failedEvents.markReplayed(third!.id);
    expect(replayed.replayedAt!.toISOString()).toBe('2027-02-03T04:05:06.789Z');
  });

  it('keeps one unchanged record when the same dead letter is recorded twice', async () => {
    const letter = deadLetter();
    const first = await failedEvents.record(letter);
    now = new Date(now.getTime() + 60_000);
    const second = await failedEvents.record({ ...letter, attempts: 99, error: 'a different error' });

    expect(second).toEqual(first);
    expect(await failedEvents.list()).toHaveLength(1);
  });

  it('keeps a replayed record replayed when the same dead letter is delivered again', async () => {
    const letter = deadLetter();
    const { id } = await failedEvents.record(letter);
    await failedEvents.markReplayed(id);
    const again = await failedEvents.record(letter);

    expect(again.status).toBe('replayed');
    expect(again.replayCount).toBe(1);
  });

  it('puts a record back to dead with new attempts and failure time when the entry fails after a replay', async () => {
    const letter = deadLetter({ minutes: 0 });
    const { id } = await failedEvents.record(letter);
    now = new Date(T0 + 10 * 60_000);
    const replayed = await failedEvents.markReplayed(id);
    expect(replayed).toMatchObject({ status: 'replayed', replayCount: 1, replayedAt: now });

    const refailure: DeadLetterRecord = {
      ...letter,
      dlqEntryId: `${T0 + 20 * 60_000}-0`,
      attempts: 3,
      error: 'health endpoint timed out after 5000 ms',
      consumer: 'printery-health-monitor:host-b:7:1',
      firstFailedAt: new Date(T0 + 19 * 60_000),
      lastFailedAt: new Date(T0 + 20 * 60_000),
    };
    const dead = await failedEvents.record(refailure);

    expect(dead).toMatchObject({
      id,
      status: 'dead',
      attempts: 3,
      error: 'health endpoint timed out after 5000 ms',
      consumer: 'printery-health-monitor:host-b:7:1',
      dlqEntryId: refailure.dlqEntryId,
      firstFailedAt: letter.firstFailedAt,
      lastFailedAt: refailure.lastFailedAt,
      replayCount: 1,
      replayedAt: new Date(T0 + 10 * 60_000),
    });
    expect(await failedEvents.depth('printery-health-monitor')).toEqual({ 'printery-health-monitor': 1 });
  });

  it('ignores a failure older than the one already recorded', async () => {
    const letter = deadLetter({ minutes: 30 });
    const { id } = await failedEvents.record(letter);
    await failedEvents.markReplayed(id);
    const stale = await failedEvents.record({
      ...letter,
      dlqEntryId: `${T0}-7`,
      attempts: 1,
      lastFailedAt: new Date(T0 + 5 * 60_000),
    });

    expect(stale).toMatchObject({
      status: 'replayed',
      attempts: letter.attempts,
      lastFailedAt: letter.lastFailedAt,
    });
  });

  it('lists newest failure first, filtered by group and status', async () => {
    const a1 = await failedEvents.record(deadLetter({ group: 'printery-notifier', minutes: 1 }));
    const b1 = await failedEvents.record(deadLetter({ group: 'printery-validator', minutes: 2 }));
    const a2 = await failedEvents.record(deadLetter({ group: 'printery-notifier', minutes: 3 }));
    const a3 = await failedEvents.record(deadLetter({ group: 'printery-notifier', minutes: 4 }));
    await failedEvents.markReplayed(a2.id);

    const ids = (events: { id: string }[]) => events.map((event) => event.id);
    expect(ids(await failedEvents.list())).toEqual([a3.id, a2.id, b1.id, a1.id]);
    expect(ids(await failedEvents.list({ group: 'printery-notifier' }))).toEqual([a3.id, a2.id, a1.id]);
    expect(ids(await failedEvents.list({ group: 'printery-notifier', status: 'dead' }))).toEqual([
      a3.id,
      a1.id,
    ]);
    expect(ids(await failedEvents.list({ status: 'replayed' }))).toEqual([a2.id]);
    expect(ids(await failedEvents.list({ group: 'printery-shield' }))).toEqual([]);
  });

  it('pages back in time with before and limit', async () => {
    const recorded = [];
    for (let minutes = 1; minutes <= 5; minutes++)
      recorded.push(await failedEvents.record(deadLetter({ minutes })));
    const newestFirst = recorded.reverse().map((event) => event.id);

    const page1 = await failedEvents.list({ limit: 2 });
    const page2 = await failedEvents.list({ limit: 2, before: page1.at(-1)!.lastFailedAt });
    const page3 = await failedEvents.list({ limit: 2, before: page2.at(-1)!.lastFailedAt });
    expect([...page1, ...page2, ...page3].map((event) => event.id)).toEqual(newestFirst);
  });

  it('filters by deployment and correlation id', async () => {
    const mine = await failedEvents.record(deadLetter({ deploymentId: 'd-7', correlationId: 'corr-7' }));
    await failedEvents.record(deadLetter({ deploymentId: 'd-8', correlationId: 'corr-8' }));

    expect((await failedEvents.list({ deploymentId: 'd-7' })).map((event) => event.id)).toEqual([mine.id]);
    expect((await failedEvents.list({ correlationId: 'corr-7' })).map((event) => event.id)).toEqual([
      mine.id,
    ]);
  });

  it('purges records older than a date and hides them unless asked for', async () => {
    const old = await failedEvents.record(deadLetter({ minutes: 1 }));
    const oldReplayed = await failedEvents.record(deadLetter({ minutes: 2 }));
    await failedEvents.markReplayed(oldReplayed.id);
    const recent = await failedEvents.record(deadLetter({ minutes: 10 }));

    expect(await failedEvents.purge({ olderThan: new Date(T0 + 5 * 60_000) })).toBe(2);
    expect((await failedEvents.list()).map((event) => event.id)).toEqual([recent.id]);
    expect((await failedEvents.list({ status: 'purged' })).map((event) => event.id)).toEqual([
      oldReplayed.id,
      old.id,
    ]);
    expect((await failedEvents.get(old.id))!.status).toBe('purged');
    expect(await failedEvents.purge({ olderThan: new Date(T0 + 5 * 60_000) })).toBe(0);
  });

  it('purges one group only, or everything', async () => {
    await failedEvents.record(deadLetter({ group: 'printery-notifier' }));
    const kept = await failedEvents.record(deadLetter({ group: 'printery-validator' }));

    expect(await failedEvents.purge({ group: 'printery-notifier' })).toBe(1);
    expect((await failedEvents.list()).map((event) => event.id)).toEqual([kept.id]);
    expect(await failedEvents.purge()).toBe(1);
    expect(await failedEvents.list()).toEqual([]);
  });

  it('brings a purged record back to dead when the entry fails again', async () => {
    const letter = deadLetter({ minutes: 1 });
    const { id } = await failedEvents.record(letter);
    await failedEvents.purge();
    const again = await failedEvents.record({
      ...letter,
      dlqEntryId: 'later-1',
      lastFailedAt: new Date(T0 + 120_000),
    });

    expect(again).toMatchObject({ id, status: 'dead' });
  });

  it('counts records waiting in dead per group', async () => {
    await failedEvents.record(deadLetter({ group: 'printery-notifier' }));
    await failedEvents.record(deadLetter({ group: 'printery-notifier' }));
    const replayed = await failedEvents.record(deadLetter({ group: 'printery-notifier' }));
    await failedEvents.markReplayed(replayed.id);
    await failedEvents.record(deadLetter({ group: 'printery-validator' }));
    const purged = await failedEvents.record(deadLetter({ group: 'printery-health-monitor', minutes: -60 }));
    await failedEvents.purge({ olderThan: new Date(purged.lastFailedAt.getTime() + 1) });

    expect(await failedEvents.depth()).toEqual({ 'printery-notifier': 2, 'printery-validator': 1 });
    expect(await failedEvents.depth('printery-notifier')).toEqual({ 'printery-notifier': 2 });
    expect(await failedEvents.depth('printery-health-monitor')).toEqual({ 'printery-health-monitor': 0 });
  });

  it('refuses to mark an unknown or purged record replayed', async () => {
    await expect(failedEvents.markReplayed('000000000000')).rejects.toThrow(NotFoundError);
    const { id } = await failedEvents.record(deadLetter());
    await failedEvents.purge();
    await expect(failedEvents.markReplayed(id)).rejects.toThrow(ConflictError);
    expect((await failedEvents.get(id))!.replayCount).toBe(0);
  });

  it('rejects bad input with a message naming the field', async () => {
    await expect(failedEvents.record(deadLetter({ group: '' }))).rejects.toThrow(
      new BadInputError('dead letter: group must be a non-empty string'),
    );
    await expect(failedEvents.record(deadLetter({ lastFailedAt: new Date('nope') }))).rejects.toThrow(
      'lastFailedAt must be a valid date',
    );
    await expect(failedEvents.record(deadLetter({ attempts: -1 }))).rejects.toThrow(
      /attempts must be a whole number/,
    );
    await expect(failedEvents.list({ limit: 0 })).rejects.toThrow(
      'limit must be an integer from 1 to 1000 (got 0)',
    );
    await expect(failedEvents.list({ status: 'gone' as never })).rejects.toThrow(
      'status must be one of dead, replayed, purged (got "gone")',
    );
    expect(await failedEvents.list()).toEqual([]);
  });
});

describe('failedEventId', () => {
  it('is 12 hex digits, the same for the same entry and different for another group', () => {
    const id = failedEventId('printery-notifier', `${PREFIX}:deployment:started`, '1700000000000-0');
    expect(id).toMatch(/^[0-9a-f]{12}$/);
    expect(failedEventId('printery-notifier', `${PREFIX}:deployment:started`, '1700000000000-0')).toBe(id);
    expect(failedEventId('shield', `${PREFIX}:deployment:started`, '1700000000000-0')).not.toBe(id);
    expect(failedEventId('printery-notifier', `${PREFIX}:deployment:started`, '1700000000000-1')).not.toBe(
      id,
    );
  });
});

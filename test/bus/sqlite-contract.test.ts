import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteBus, SqliteBus, SqliteBusDatabase } from '../../src/bus/sqlite/index.js';
import { deadLetterStreamKey, replayStreamKey, streamKey } from '../../src/events/streams.js';
import { uniquePrefix } from '../support/redis.js';
import { type BusHarness, busContract } from './contract.js';

/**
 * `shared`: every subscriber uses the bus' own connection (one process, as `materi up` runs it;
 * subscriptions are woken by the in-process notifier). `separate`: every subscriber opens the file
 * on a connection of its own, as another process would, and sees new entries by polling.
 */
async function openSqliteHarness(mode: 'shared' | 'separate'): Promise<BusHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'materi-bus-'));
  const path = join(dir, 'bus.db');
  const prefix = uniquePrefix('contract');
  const bus = await openSqliteBus(path, { prefix, pollIntervalMs: 20 });
  const others: SqliteBus[] = [];
  return {
    prefix,
    publisher: bus.publisher,
    subscriber(settings) {
      const options = {
        scanIntervalMs: settings?.scanIntervalMs ?? 50,
        discoveryIntervalMs: settings?.discoveryIntervalMs ?? 100,
      };
      if (mode === 'shared') return bus.subscriber(options);
      const other = new SqliteBus(SqliteBusDatabase.open(path, { pollIntervalMs: 20 }), { prefix });
      others.push(other);
      return other.subscriber(options);
    },
    idempotency: bus.idempotency,
    async writeRaw(type, fields) {
      await bus.append(streamKey(prefix, type), fields);
    },
    async writeReplay(group, fields) {
      await bus.append(replayStreamKey(prefix, group), fields);
    },
    async deadLetters(group) {
      return bus.range(deadLetterStreamKey(prefix, group), { count: 1000 }).map((e) => e.fields);
    },
    async pendingCount(type, group) {
      return bus.pendingCount(streamKey(prefix, type), group);
    },
    async close() {
      await Promise.all(others.map((o) => o.close(0)));
      await bus.close(0);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

busContract('SQLite (embedded, one connection)', () => openSqliteHarness('shared'), { multiProcess: true });
busContract('SQLite (embedded, a connection per subscriber)', () => openSqliteHarness('separate'), {
  multiProcess: true,
});

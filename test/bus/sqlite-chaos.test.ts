import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteBus, type SqliteBus } from '../../src/bus/sqlite/index.js';
import { deadLetterStreamKey, streamKey } from '../../src/events/streams.js';
import { eventually, uniquePrefix } from '../support/redis.js';

let dir: string;
let busPath: string;
let effectsPath: string;
let prefix: string;
let effects: SqliteDatabase.Database;
const children: ChildProcess[] = [];
const opened: SqliteBus[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'materi-bus-chaos-'));
  busPath = join(dir, 'bus.db');
  effectsPath = join(dir, 'effects.db');
  prefix = uniquePrefix('chaos');
  effects = new SqliteDatabase(effectsPath);
  effects.pragma('journal_mode = WAL');
  effects.pragma('busy_timeout = 5000');
  effects.exec(`
    CREATE TABLE executions (event_id TEXT NOT NULL, consumer TEXT NOT NULL);
    CREATE TABLE effects (event_id TEXT PRIMARY KEY, consumer TEXT NOT NULL);
  `);
});

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  for (const bus of opened.splice(0)) await bus.close(0);
  effects.close();
  rmSync(dir, { recursive: true, force: true });
});

async function open(): Promise<SqliteBus> {
  const bus = await openSqliteBus(busPath, { prefix });
  opened.push(bus);
  return bus;
}

/** Starts a fixture process; resolves once it printed "ready". Its later stdout lines go to `lines`. */
function start(fixture: string, env: Record<string, string>, lines: string[] = []): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', `test/bus/fixtures/${fixture}`], {
    env: { ...process.env, BUS_PATH: busPath, EFFECTS_PATH: effectsPath, PREFIX: prefix, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let buffer = '';
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      let newline = buffer.indexOf('\n');
      while (newline >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line === 'ready') resolve(child);
        else lines.push(line);
        newline = buffer.indexOf('\n');
      }
    });
    child.on('exit', (code, signal) => reject(new Error(`${fixture} exited early with ${code ?? signal}`)));
  });
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

const count = (sql: string) => effects.prepare(sql).pluck().get() as number;

describe('embedded bus under failure', () => {
  it('keeps every event whose publish resolved when publisher processes are SIGKILLed', async () => {
    const lines: string[] = [];
    const publishers = await Promise.all([
      start('sqlite-publisher.ts', { NAME: 'one', BATCH: '1' }, lines),
      start('sqlite-publisher.ts', { NAME: 'two', BATCH: '7' }, lines),
    ]);
    await eventually(() => lines.length >= 600, 20_000, 5);
    await Promise.all(publishers.map(kill));
    const acknowledged = lines.map((line) => {
      const [, eventId, entryId] = line.split(' ');
      return { eventId: eventId!, entryId: entryId! };
    });

    const bus = await open();
    const stored = bus.range(streamKey(prefix, 'deployment:started'), { count: 1_000_000 });
    const storedIds = new Set(stored.map((e) => e.fields.id));
    expect(acknowledged.filter((a) => !storedIds.has(a.eventId))).toEqual([]);
    const entryOf = new Map(stored.map((e) => [e.fields.id, e.entryId]));
    expect(acknowledged.every((a) => entryOf.get(a.eventId) === a.entryId)).toBe(true);
    // Both processes appended to one stream: ids stay unique and increase in append order.
    const ids = stored.map((e) => e.entryId.split('-').map(Number) as [number, number]);
    for (let i = 1; i < ids.length; i++) {
      const [ms, n] = ids[i]!;
      const [prevMs, prevN] = ids[i - 1]!;
      expect(ms > prevMs || (ms === prevMs && n > prevN)).toBe(true);
    }
  }, 40_000);

  it('loses nothing when a consumer process is SIGKILLed mid-batch', async () => {
    const bus = await open();
    const published = await bus.publisher.publishBatch(
      Array.from({ length: 150 }, (_, i) => ({
        type: 'deployment:started',
        data: { deploymentId: `d-${i}` },
      })),
    );
    const stream = streamKey(prefix, 'deployment:started');
    const victim = await start('sqlite-consumer.ts', { CONCURRENCY: '5', DELAY_MS: '15' });
    // Killed while handlers run (their execution is recorded as they start), not between batches.
    await eventually(() => count('SELECT count(*) FROM executions') >= 40, 20_000, 5);
    await kill(victim);
    const pendingAtKill = bus.pendingCount(stream, 'chaos');
    await start('sqlite-consumer.ts', { CONCURRENCY: '5', DELAY_MS: '1', SLOT: '1' });
    await eventually(() => count('SELECT count(*) FROM effects') === 150, 20_000);
    const handled = effects.prepare('SELECT event_id FROM effects').pluck().all() as string[];
    expect(handled.sort()).toEqual(published.map((p) => p.event.id).sort());
    // At least once: only the entries in flight at the kill may run twice.
    expect(count('SELECT count(*) FROM executions') - 150).toBeLessThanOrEqual(5);
    expect(pendingAtKill).toBeGreaterThan(0);
    await eventually(() => bus.pendingCount(stream, 'chaos') === 0);
    expect(bus.range(deadLetterStreamKey(prefix, 'chaos'))).toEqual([]);
  }, 40_000);

  it('lets consumer processes share a group, handling each event once', async () => {
    const bus = await open();
    await Promise.all([
      start('sqlite-consumer.ts', { CONCURRENCY: '4', DELAY_MS: '2', SLOT: '0' }),
      start('sqlite-consumer.ts', { CONCURRENCY: '4', DELAY_MS: '2', SLOT: '1' }),
    ]);
    const ids: string[] = [];
    for (let round = 0; round < 10; round++) {
      const batch = await bus.publisher.publishBatch(
        Array.from({ length: 20 }, (_, i) => ({
          type: 'deployment:started',
          data: { deploymentId: `r${round}-${i}` },
        })),
      );
      ids.push(...batch.map((p) => p.event.id));
      await new Promise((r) => setTimeout(r, 20));
    }
    await eventually(() => count('SELECT count(*) FROM effects') === ids.length, 20_000);
    expect(count('SELECT count(*) FROM executions')).toBe(ids.length);
    const consumers = effects.prepare('SELECT DISTINCT consumer FROM effects').pluck().all() as string[];
    expect(new Set(consumers.map((c) => c.split(':')[2])).size).toBe(2);
  }, 40_000);
});

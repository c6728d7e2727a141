/**
 * What the `materi dlq` commands do when they run; dlq.ts registers them.
 *
 * @module
 */
import { openEventBus } from '../bus/open.js';
import { replayFailedEvents } from '../dlq/index.js';
import { BadInputError, NotFoundError } from '../errors/index.js';
import { loadSettings } from '../runtime/config.js';
import { createLogger } from '../runtime/logging.js';
import { type FailedEvent, FailedEventStore, openStore } from '../store/index.js';
import { announceBackend, whoAmI } from './shared.js';

async function openDlq() {
  const settings = loadSettings();
  const logger = createLogger({
    name: 'cli',
    level: settings.logLevel === 'info' ? 'warn' : settings.logLevel,
  });
  const store = await openStore({ databaseUrl: settings.databaseUrl, dataDir: settings.dataDir, logger });
  if (process.env.MATERI_QUIET !== '1')
    process.stderr.write(`materi: store ${store.dialect} ${store.describe()}\n`);
  return { settings, logger, store, failedEvents: new FailedEventStore(store.db) };
}

function toJson(row: FailedEvent): Record<string, unknown> {
  return {
    ...row,
    firstFailedAt: row.firstFailedAt.toISOString(),
    lastFailedAt: row.lastFailedAt.toISOString(),
    replayedAt: row.replayedAt?.toISOString(),
    createdAt: row.createdAt.toISOString(),
  };
}

const DURATION = /^(\d+)(ms|s|m|h|d)$/;
const UNIT = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

function parseAge(value: string): number {
  const match = DURATION.exec(value.trim());
  if (!match)
    throw new BadInputError(`--older-than: expected a duration like 30m, 12h or 7d, got "${value}"`);
  return Number(match[1]) * UNIT[match[2] as keyof typeof UNIT];
}

/** `materi dlq list`. */
export async function list(options: {
  group?: string;
  status?: string;
  limit?: string;
  json?: boolean;
}): Promise<void> {
  if (options.status && !['dead', 'replayed', 'purged'].includes(options.status)) {
    throw new BadInputError(`--status must be dead, replayed or purged, got "${options.status}"`);
  }
  const { store, failedEvents } = await openDlq();
  try {
    const rows = await failedEvents.list({
      group: options.group,
      status: options.status as FailedEvent['status'] | undefined,
      limit: options.limit === undefined ? undefined : Number(options.limit),
    });
    if (options.json) {
      process.stdout.write(`${JSON.stringify(rows.map(toJson))}\n`);
      return;
    }
    if (rows.length === 0) {
      process.stdout.write('no dead-lettered events\n');
      return;
    }
    const lines = rows.map((r) =>
      [
        r.id,
        r.status.padEnd(8),
        r.group.padEnd(28),
        (r.eventType || '-').padEnd(32),
        String(r.attempts).padStart(3),
        r.lastFailedAt.toISOString(),
        r.error.replace(/\s+/g, ' ').slice(0, 80),
      ].join('  '),
    );
    process.stdout.write(
      `${['ID          ', 'STATUS  ', 'GROUP'.padEnd(28), 'TYPE'.padEnd(32), 'TRY', 'LAST FAILURE'.padEnd(24), 'ERROR'].join('  ')}\n${lines.join('\n')}\n`,
    );
  } finally {
    await store.close();
  }
}

/** `materi dlq show <id>`. */
export async function show(id: string, options: { json?: boolean }): Promise<void> {
  const { store, failedEvents } = await openDlq();
  try {
    const row = await failedEvents.get(id);
    if (!row) throw new NotFoundError(`no failed event with id ${id} (see materi dlq list)`);
    if (options.json) {
      process.stdout.write(`${JSON.stringify(toJson(row))}\n`);
      return;
    }
    const out = [
      `id:             ${row.id}`,
      `status:         ${row.status}${row.replayedAt ? ` (replayed ${row.replayCount}x, last ${row.replayedAt.toISOString()})` : ''}`,
      `group:          ${row.group}`,
      `consumer:       ${row.consumer}`,
      `event:          ${row.eventType || '-'} ${row.eventId || ''}`,
      `deployment:     ${row.deploymentId || '-'}`,
      `correlation:    ${row.correlationId || '-'}`,
      `source:         ${row.sourceStream} ${row.entryId}`,
      `attempts:       ${row.attempts}`,
      `first failure:  ${row.firstFailedAt.toISOString()}`,
      `last failure:   ${row.lastFailedAt.toISOString()}`,
      `error:          ${row.error}`,
      '',
      'stack:',
      row.stack || '(none)',
      '',
      'payload:',
      JSON.stringify(row.fields, null, 2),
    ];
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    await store.close();
  }
}

/** `materi dlq replay [ids...]`. */
export async function replay(
  ids: string[],
  options: { all?: boolean; group?: string; json?: boolean },
): Promise<void> {
  if (options.all && ids.length > 0) throw new BadInputError('give ids or --all, not both');
  if (!options.all && ids.length === 0) throw new BadInputError('give a failed event id, or --all');
  if (options.group && !options.all) throw new BadInputError('--group works with --all');
  const { settings, logger, store, failedEvents } = await openDlq();
  const bus = await openEventBus(settings, { logger, source: 'materi/cli' });
  announceBackend(bus);
  try {
    const results = await replayFailedEvents(
      bus,
      failedEvents,
      options.all ? { all: true, group: options.group } : { ids },
      whoAmI(),
    );
    if (options.json) process.stdout.write(`${JSON.stringify(results)}\n`);
    else if (results.length === 0) process.stdout.write('nothing to replay\n');
    else
      for (const r of results)
        process.stdout.write(`replayed ${r.id} to ${r.group} (entry ${r.replayEntryId})\n`);
  } finally {
    await bus.close();
    await store.close();
  }
}

/** `materi dlq purge`. */
export async function purge(options: { olderThan?: string; group?: string; json?: boolean }): Promise<void> {
  const olderThan = options.olderThan ? new Date(Date.now() - parseAge(options.olderThan)) : undefined;
  const { store, failedEvents } = await openDlq();
  try {
    const purged = await failedEvents.purge({ olderThan, group: options.group });
    process.stdout.write(options.json ? `${JSON.stringify({ purged })}\n` : `purged ${purged} event(s)\n`);
  } finally {
    await store.close();
  }
}

/**
 * What `materi workers` does when it runs; workers.ts registers it.
 *
 * @module
 */
import { openEventBus } from '../bus/open.js';
import { loadSettings } from '../runtime/config.js';
import { createLogger } from '../runtime/logging.js';
import { collectWorkerStatus, type WorkerStatusReport } from '../runtime/worker-status.js';
import { FailedEventStore, openStore } from '../store/index.js';
import { announceBackend } from './shared.js';

function age(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}

export function renderWorkerStatus(report: WorkerStatusReport): string {
  if (report.groups.length === 0) return 'no consumer groups yet\n';
  const lines: string[] = [];
  for (const g of report.groups) {
    lines.push(
      `${g.group}  lag ${g.lag}  pending ${g.pending}  oldest pending ${age(g.oldestPendingAgeMs)}  dlq ${g.deadLetterDepth}`,
    );
    for (const c of g.consumers) {
      const beat = c.lastHeartbeat
        ? `heartbeat ${age(Date.now() - c.lastHeartbeat.getTime())} ago`
        : 'no heartbeat';
      const where = c.host ? `${c.host} pid ${c.pid}` : '';
      lines.push(
        `  ${c.state.toUpperCase().padEnd(5)}  ${c.name}  ${where}  pending ${c.pending}  idle ${age(c.idleMs)}  ${c.state === 'retry' ? '' : beat}`.trimEnd(),
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

/** `materi workers`: the consumer groups' report, as a table or JSON. */
export async function workers(options: { json?: boolean }): Promise<void> {
  const settings = loadSettings();
  const logger = createLogger({ name: 'cli', level: 'warn' });
  const bus = await openEventBus(settings, { logger, source: 'materi/cli' });
  announceBackend(bus);
  const store = await openStore({ databaseUrl: settings.databaseUrl, dataDir: settings.dataDir, logger });
  try {
    const report = await collectWorkerStatus(bus.inspector, new FailedEventStore(store.db));
    process.stdout.write(options.json ? `${JSON.stringify(report)}\n` : renderWorkerStatus(report));
  } finally {
    await store.close();
    await bus.close();
  }
}

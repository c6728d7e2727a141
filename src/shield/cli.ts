import type { Command } from 'commander';
import { announceBackend } from '../cli/shared.js';
import type { RebuildShieldResult } from './rebuild.js';

/**
 * `materi shield …`: maintenance of Shield's projection. The CLI registers these with every other
 * command, so what they run (store, bus, rebuild) is imported only when one runs.
 */
export function registerShieldCommands(program: Command): void {
  const shield = program.command('shield').description("Shield's deployment records, history and dashboard");

  shield
    .command('rebuild')
    .description(
      "add to Shield's event log what the event streams hold and it lacks, then recompute every " +
        'deployment record from the log (events trimmed from the streams are kept)',
    )
    .option('--from-log', "recompute the records from Shield's own event log only (streams untouched)")
    .option('--json', 'print the result as JSON')
    .action(async (options: { fromLog?: boolean; json?: boolean }) => {
      const { loadSettings } = await import('../runtime/config.js');
      const { createLogger } = await import('../runtime/logging.js');
      const { openStore } = await import('../store/index.js');
      const { rebuildShield, recomputeShieldRecords } = await import('./rebuild.js');
      const settings = loadSettings();
      const logger = createLogger({
        name: 'shield',
        level: settings.logLevel === 'info' ? 'warn' : settings.logLevel,
      });
      const store = await openStore({ databaseUrl: settings.databaseUrl, dataDir: settings.dataDir, logger });
      if (process.env.MATERI_QUIET !== '1') {
        process.stderr.write(`materi: store ${store.dialect} ${store.describe()}\n`);
      }
      try {
        if (options.fromLog) {
          const deployments = await recomputeShieldRecords({ db: store.db });
          process.stdout.write(
            options.json
              ? `${JSON.stringify({ deployments })}\n`
              : `recomputed ${deployments} deployment record(s) from the event log\n`,
          );
          return;
        }
        const { openEventBus } = await import('../bus/open.js');
        const { streamReaderFor } = await import('../bus/stream-reader.js');
        const bus = await openEventBus(settings, { logger, source: 'materi/shield' });
        announceBackend(bus);
        try {
          const result = await rebuildShield({ db: store.db, reader: streamReaderFor(bus), logger });
          process.stdout.write(options.json ? `${JSON.stringify(result)}\n` : describeRebuild(result));
          if (!options.json && result.incomplete.length > 0) {
            process.stderr.write(`materi: warning: ${describeIncomplete(result.incomplete)}\n`);
          }
        } finally {
          await bus.close();
        }
      } finally {
        await store.close();
      }
    });
}

/** The summary line of a rebuild: what the records come from, and what was added and kept. */
function describeRebuild(result: RebuildShieldResult): string {
  return (
    `rebuilt ${result.deployments} deployment record(s) from ${result.events} logged event(s): ` +
    `${result.added} added from ${result.streams} stream(s) (${result.entries} entries), ` +
    `${result.kept} kept that the streams no longer hold` +
    `; release ledger of ${result.environments} environment(s) recomputed` +
    (result.undecodable ? `, ${result.undecodable} undecodable entries skipped` : '') +
    '\n'
  );
}

function describeIncomplete(ids: readonly string[]): string {
  const shown = ids.slice(0, 5).join(', ') + (ids.length > 5 ? `, … (${ids.length - 5} more)` : '');
  return (
    `${ids.length} deployment record(s) lack their deployment:started — their first events were ` +
    `trimmed from the streams before Shield logged them, so their history is partial: ${shown}`
  );
}

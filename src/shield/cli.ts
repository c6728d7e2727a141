import type { Command } from 'commander';
import { openEventBus } from '../bus/open.js';
import { streamReaderFor } from '../bus/stream-reader.js';
import { announceBackend } from '../cli/shared.js';
import { loadSettings } from '../runtime/config.js';
import { createLogger } from '../runtime/logging.js';
import { openStore } from '../store/index.js';
import { rebuildShield, recomputeShieldRecords } from './rebuild.js';

/** `materi shield …`: maintenance of Shield's projection. */
export function registerShieldCommands(program: Command): void {
  const shield = program.command('shield').description("Shield's deployment records, history and dashboard");

  shield
    .command('rebuild')
    .description(
      'empty the projection (event log and records) and rebuild it by replaying every event stream',
    )
    .option('--from-log', "recompute the records from Shield's own event log instead (streams untouched)")
    .option('--json', 'print the result as JSON')
    .action(async (options: { fromLog?: boolean; json?: boolean }) => {
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
        const bus = await openEventBus(settings, { logger, source: 'materi/shield' });
        announceBackend(bus);
        try {
          const result = await rebuildShield({ db: store.db, reader: streamReaderFor(bus), logger });
          process.stdout.write(
            options.json
              ? `${JSON.stringify(result)}\n`
              : `rebuilt from ${result.streams} stream(s): ${result.entries} entries, ${result.events} events, ` +
                  `${result.deployments} deployment record(s)` +
                  (result.undecodable ? `, ${result.undecodable} undecodable entries skipped` : '') +
                  '\n',
          );
        } finally {
          await bus.close();
        }
      } finally {
        await store.close();
      }
    });
}

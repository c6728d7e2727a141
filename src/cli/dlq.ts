import type { Command } from 'commander';

/** `materi dlq …`; what the commands do is in dlq-actions.ts, loaded when one runs. */
export function registerDlqCommands(program: Command): void {
  const dlq = program.command('dlq').description('inspect, replay and purge dead-lettered events');

  dlq
    .command('list')
    .description('list dead-lettered events, newest first')
    .option('--group <group>', 'only this consumer group')
    .option('--status <status>', 'dead, replayed or purged (default: dead and replayed)')
    .option('--limit <n>', 'at most n rows (default 100)')
    .option('--json', 'print JSON')
    .action(async (options: { group?: string; status?: string; limit?: string; json?: boolean }) =>
      (await import('./dlq-actions.js')).list(options),
    );

  dlq
    .command('show')
    .description('show one dead-lettered event with its error, stack and payload')
    .argument('<id>', 'failed event id (from materi dlq list)')
    .option('--json', 'print JSON')
    .action(async (id: string, options: { json?: boolean }) =>
      (await import('./dlq-actions.js')).show(id, options),
    );

  dlq
    .command('replay')
    .description('deliver dead-lettered events again to the group that failed them (and no other)')
    .argument('[ids...]', 'failed event ids')
    .option('--all', 'every event still dead (with --group: of that group)')
    .option('--group <group>', 'with --all: only this consumer group')
    .option('--json', 'print JSON')
    .action(async (ids: string[], options: { all?: boolean; group?: string; json?: boolean }) =>
      (await import('./dlq-actions.js')).replay(ids, options),
    );

  dlq
    .command('purge')
    .description('mark dead-lettered events purged (hidden from list, never replayed)')
    .option('--older-than <age>', 'only events whose last failure is older, e.g. 7d, 12h, 30m')
    .option('--group <group>', 'only this consumer group')
    .option('--json', 'print JSON')
    .action(async (options: { olderThan?: string; group?: string; json?: boolean }) =>
      (await import('./dlq-actions.js')).purge(options),
    );
}

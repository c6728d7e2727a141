import type { Command } from 'commander';

/** `materi workers`; what it does is in workers-actions.ts, loaded when it runs. */
export function registerWorkersCommand(program: Command): void {
  program
    .command('workers')
    .description(
      'show consumer groups: consumers (alive or dead), lag, pending, oldest pending age, DLQ depth',
    )
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }) => (await import('./workers-actions.js')).workers(options));
}

import type { Command } from 'commander';
import type { RollbackOptions } from './releases-actions.js';

/**
 * `materi rollback` and `materi history`: the release ledger of an environment, from the server
 * (`materi up`), like `deploy` without `--standalone`. What they do is in releases-actions.ts, loaded
 * when one runs.
 */
export function registerReleaseCommands(program: Command): void {
  program
    .command('rollback')
    .description('roll an environment back to the previous good release (or --to VERSION) and wait for it')
    .argument('<project>', "the plan's project")
    .requiredOption('--env <environment>', 'the environment to roll back')
    .option('--to <version>', 'a version that once succeeded there (default: the previous good release)')
    .option('--reason <text>', 'why, recorded with the rollback')
    .option('--detach', 'print the rollback deployment id and return without waiting')
    .option('--json', 'print NDJSON: every event of the rollback, then the result')
    .addHelpText(
      'after',
      '\nThe rollback runs as a deployment of that version with the plan and variables it was released with:\n' +
        'no validation or dependency gate, the stages and the health gate, no automatic rollback.\n' +
        'Exit codes as deploy: 0 succeeded, 1 failed, 2 bad input, 3 rolled back, 4 cancelled.\n' +
        'Refused (exit 1, MATERI_ERR_CONFLICT) while the environment is busy.',
    )
    .action(async (project: string, options: RollbackOptions) =>
      (await import('./releases-actions.js')).rollback(project, options),
    );

  program
    .command('history')
    .description('show the releases of a project (every environment, or one), newest first')
    .argument('<project>', "the plan's project")
    .option('--env <environment>', 'only this environment')
    .option('--limit <n>', 'at most this many releases per environment', '20')
    .option('--json', 'print JSON')
    .action(async (project: string, options: { env?: string; limit: string; json?: boolean }) =>
      (await import('./releases-actions.js')).history(project, options),
    );
}

import type { Command } from 'commander';
import type { DeployOptions } from './deploy-actions.js';
import { collect } from './shared.js';

/** `materi deploy`, `cancel` and `status`; what they do is in deploy-actions.ts, loaded when one runs. */
export function registerDeployCommands(program: Command): void {
  program
    .command('deploy')
    .description('deploy a plan: validation, dependencies, stages, health; rolls back on failure')
    .argument('<plan>', 'plan file (YAML)')
    .requiredOption('--version <version>', 'version to deploy, e.g. v1.4.2')
    .option('--env <environment>', "target environment (default: the plan's)")
    .option('--var <name=value>', 'set ${name} in the plan (repeatable; not for secrets)', collect, [])
    .option('--detach', 'print the deployment id and return without waiting')
    .option('--standalone', 'run the orchestrator and workers in this process (CI pipelines)')
    .option('--queue', 'wait for a busy environment instead of failing')
    .option(
      '--override-freeze',
      'deploy into a frozen environment (freeze window or open critical incident); needs --reason',
    )
    .option('--reason <text>', 'why the freeze is overridden (recorded and shown with the deployment)')
    .option('--json', 'print NDJSON: every event of the deployment, then the result')
    .addHelpText(
      'after',
      '\nExit codes: 0 success, 1 failed, 2 bad input or a frozen environment, 3 rolled back, 4 cancelled.',
    )
    .action(async (file: string, options: DeployOptions) =>
      (await import('./deploy-actions.js')).deploy(file, options),
    );

  program
    .command('cancel')
    .description('cancel a running deployment')
    .argument('<id>', 'deployment id')
    .option('--rollback', 'also roll back the stages it deployed')
    .option('--json', 'print JSON')
    .action(async (id: string, options: { rollback?: boolean; json?: boolean }) =>
      (await import('./deploy-actions.js')).cancel(id, options),
    );

  program
    .command('status')
    .description("show a deployment's state, or the latest deployments")
    .argument('[id]', 'deployment id')
    .option('--json', 'print JSON')
    .action(async (id: string | undefined, options: { json?: boolean }) =>
      (await import('./deploy-actions.js')).status(id, options),
    );
}

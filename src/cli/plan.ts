import type { Command } from 'commander';
import type { ValidateOptions } from './plan-actions.js';
import { collect } from './shared.js';

/**
 * `materi plan …`: commands that work on plan files without deploying anything. What they do is in
 * plan-actions.ts, loaded when one runs.
 */
export function registerPlanCommands(program: Command): void {
  const plan = program.command('plan').description('work with plan files (see docs/plan.md)');

  plan
    .command('validate')
    .description(
      'check a plan file (syntax, schema, stage graph, services) and print its stages in execution waves ' +
        'and the environment variables it needs; exit 0 when valid, 2 when not',
    )
    .argument('<file>', 'plan file (YAML)')
    .option('--var <key=value>', 'a value for ${key} in the plan (repeatable)', collect, [])
    .option('--env <environment>', "target environment, instead of the plan's `environment`")
    .option('--version <version>', 'version to expand as ${VERSION} (e.g. v1.4.2)')
    .option('--json', 'print the summary as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  materi plan validate examples/three-stage.yaml --version v1.4.2\n' +
        '  materi plan validate plans/prod.yaml --env staging --var REGION=eu-west-1 --json\n',
    )
    .action(async (file: string, options: ValidateOptions) =>
      (await import('./plan-actions.js')).validate(file, options),
    );
}

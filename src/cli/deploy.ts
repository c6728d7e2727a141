import { readFile } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import { BadInputError } from '../errors/index.js';
import { type DeploymentView, FINAL_STATUSES } from '../orchestrator/index.js';
import { loadPlanFile } from '../orchestrator/plan/index.js';
import { loadSettings } from '../runtime/config.js';
import { createLogger } from '../runtime/logging.js';
import { COMPONENTS, startStack } from '../runtime/stack.js';
import { apiRequest } from './client.js';
import { exitCodeFor, ProgressPrinter } from './progress.js';
import { announceBackend, collect, parseVars } from './shared.js';

function whoAmI(): string {
  try {
    return `${userInfo().username}@${hostname()}`;
  } catch {
    return `cli@${hostname()}`;
  }
}

interface DeployOptions {
  version: string;
  env?: string;
  var: string[];
  detach?: boolean;
  standalone?: boolean;
  json?: boolean;
  queue?: boolean;
}

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
    .option('--json', 'print NDJSON: every event of the deployment, then the result')
    .addHelpText('after', '\nExit codes: 0 success, 1 failed, 2 bad input, 3 rolled back, 4 cancelled.')
    .action(async (file: string, options: DeployOptions) => {
      const vars = parseVars(options.var);
      if (options.standalone && options.detach) {
        throw new BadInputError(
          '--detach needs a running server (materi up); --standalone runs the deployment in this process and waits',
        );
      }
      // Validate here first: a bad plan fails fast with the path of the error (exit 2).
      await loadPlanFile(file, { version: options.version, environment: options.env, vars });
      const request = {
        plan: await readFile(file, 'utf8'),
        planSource: file,
        baseDir: dirname(resolve(file)),
        version: options.version,
        environment: options.env,
        vars,
        triggeredBy: whoAmI(),
        queue: options.queue,
      };
      const settings = loadSettings();
      const printer = new ProgressPrinter(process.stdout, options.json ?? false);
      let final: DeploymentView;
      if (options.standalone) {
        const logger = createLogger({
          name: 'deploy',
          level: settings.logLevel === 'info' ? 'warn' : settings.logLevel,
        });
        const stack = await startStack({
          settings,
          logger,
          role: 'deploy --standalone',
          // The notifier runs only with a settings file: standalone has no local inbox to post to.
          components: COMPONENTS.filter(
            (c) => c !== 'shield' && (c !== 'notifier' || settings.notifierConfig),
          ),
        });
        announceBackend(stack.bus);
        try {
          const view = await stack.orchestrator!.submit({ ...request, planText: request.plan });
          final = await follow((id) => stack.orchestrator!.get(id), view.id, printer);
        } finally {
          await stack.close();
        }
      } else {
        const view = await apiRequest<DeploymentView>(settings, 'POST', '/api/deployments', request);
        if (options.detach) {
          process.stdout.write(
            options.json ? `${JSON.stringify({ id: view.id, status: view.status })}\n` : `${view.id}\n`,
          );
          return;
        }
        final = await follow(
          (id) => apiRequest<DeploymentView>(settings, 'GET', `/api/deployments/${id}/saga`),
          view.id,
          printer,
        );
      }
      // The printer's last line is the summary (with --json, the result): the reason, once.
      process.exitCode = exitCodeFor(final.status);
    });

  program
    .command('cancel')
    .description('cancel a running deployment')
    .argument('<id>', 'deployment id')
    .option('--rollback', 'also roll back the stages it deployed')
    .option('--json', 'print JSON')
    .action(async (id: string, options: { rollback?: boolean; json?: boolean }) => {
      const result = await apiRequest<{ id: string; status: string }>(
        loadSettings(),
        'POST',
        `/api/deployments/${encodeURIComponent(id)}/cancel`,
        {
          rollback: options.rollback ?? false,
          by: whoAmI(),
        },
      );
      process.stdout.write(
        options.json
          ? `${JSON.stringify(result)}\n`
          : `cancel requested for ${result.id} (${result.status})\n`,
      );
    });

  program
    .command('status')
    .description("show a deployment's state, or the latest deployments")
    .argument('[id]', 'deployment id')
    .option('--json', 'print JSON')
    .action(async (id: string | undefined, options: { json?: boolean }) => {
      const settings = loadSettings();
      if (id) {
        const view = await apiRequest<DeploymentView>(
          settings,
          'GET',
          `/api/deployments/${encodeURIComponent(id)}/saga`,
        );
        if (options.json) {
          process.stdout.write(`${JSON.stringify(view)}\n`);
          return;
        }
        const lines = [
          `${view.id}  ${view.project} ${view.version} → ${view.environment}  ${view.status} (${view.phase})`,
          ...(view.blockedOn ? [`blocked on: ${view.blockedOn.group} since ${view.blockedOn.since}`] : []),
          ...Object.entries(view.state.stages).map(
            ([name, s]) => `  stage ${name}: ${s.status}${s.error ? ` — ${s.error}` : ''}`,
          ),
          ...(view.reason ? [`reason: ${view.reason}`] : []),
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
        return;
      }
      const views = await apiRequest<DeploymentView[]>(settings, 'GET', '/api/sagas');
      if (options.json) process.stdout.write(`${JSON.stringify(views)}\n`);
      else if (views.length === 0) process.stdout.write('no deployments yet\n');
      else
        for (const v of views)
          process.stdout.write(
            `${v.id}  ${v.createdAt}  ${v.project} ${v.version} → ${v.environment}  ${v.status}\n`,
          );
    });
}

async function follow(
  get: (id: string) => Promise<DeploymentView>,
  id: string,
  printer: ProgressPrinter,
): Promise<DeploymentView> {
  for (;;) {
    const view = await get(id);
    printer.update(view);
    if (FINAL_STATUSES.includes(view.status)) return view;
    await new Promise((r) => setTimeout(r, 250));
  }
}

import type { Command } from 'commander';
import { BadInputError } from '../errors/index.js';
import { type DeploymentView, FINAL_STATUSES } from '../orchestrator/index.js';
import type { Release } from '../orchestrator/ledger.js';
import { loadSettings } from '../runtime/config.js';
import { apiRequest } from './client.js';
import { whoAmI } from './deploy.js';
import { InterruptTrap } from './interrupt.js';
import { exitCodeFor, ProgressPrinter } from './progress.js';

const POLL_MS = 300;

/** A release as the API sends it (times in RFC 3339). */
type ReleaseJson = Omit<Release, 'since' | 'until'> & { since: string; until?: string };

/**
 * `materi rollback` and `materi history`: the release ledger of an environment, from the server
 * (`materi up`), like `deploy` without `--standalone`.
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
    .action(
      async (
        project: string,
        options: { env: string; to?: string; reason?: string; detach?: boolean; json?: boolean },
      ) => {
        const settings = loadSettings();
        const started = await apiRequest<{ id: string; status: string; version: string }>(
          settings,
          'POST',
          `/api/environments/${encodeURIComponent(project)}/${encodeURIComponent(options.env)}/rollback`,
          { to: options.to, reason: options.reason, by: whoAmI() },
        );
        if (options.detach) {
          process.stdout.write(options.json ? `${JSON.stringify(started)}\n` : `${started.id}\n`);
          return;
        }
        const printer = new ProgressPrinter(process.stdout, options.json ?? false);
        const trap = new InterruptTrap(() => process.exit(trap.exitCode));
        trap.signal.addEventListener('abort', () => {
          process.stderr.write(
            `\nmateri: stopped following; rollback ${started.id} keeps running on the server.\n` +
              `  follow it: materi status ${started.id}\n`,
          );
          process.exit(trap.exitCode);
        });
        try {
          for (;;) {
            const view = await apiRequest<DeploymentView>(
              settings,
              'GET',
              `/api/deployments/${encodeURIComponent(started.id)}/saga`,
            );
            printer.update(view);
            if (FINAL_STATUSES.includes(view.status)) {
              process.exitCode = exitCodeFor(view.status);
              return;
            }
            await trap.sleep(POLL_MS);
          }
        } finally {
          trap.dispose();
        }
      },
    );

  program
    .command('history')
    .description('show the releases of a project (every environment, or one), newest first')
    .argument('<project>', "the plan's project")
    .option('--env <environment>', 'only this environment')
    .option('--limit <n>', 'at most this many releases per environment', '20')
    .option('--json', 'print JSON')
    .action(async (project: string, options: { env?: string; limit: string; json?: boolean }) => {
      const settings = loadSettings();
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        throw new BadInputError(
          `--limit ${JSON.stringify(options.limit)}: expected a whole number from 1 to 1000`,
        );
      }
      const environments = options.env
        ? [options.env]
        : (await apiRequest<ReleaseJson[]>(settings, 'GET', '/api/environments'))
            .filter((r) => r.project === project)
            .map((r) => r.environment);
      const releases: ReleaseJson[] = [];
      for (const environment of environments) {
        releases.push(
          ...(await apiRequest<ReleaseJson[]>(
            settings,
            'GET',
            `/api/environments/${encodeURIComponent(project)}/${encodeURIComponent(environment)}/history?limit=${limit}`,
          )),
        );
      }
      if (options.json) {
        process.stdout.write(`${JSON.stringify(releases)}\n`);
        return;
      }
      if (releases.length === 0) {
        process.stdout.write(
          `no releases of ${project}${options.env ? ` in ${options.env}` : ''} are recorded\n`,
        );
        return;
      }
      const rows = releases.map((r) => [
        r.environment,
        r.version,
        r.until ? '' : 'current',
        r.kind,
        r.since,
        r.deploymentId,
        r.triggeredBy,
      ]);
      const header = ['ENVIRONMENT', 'VERSION', 'STATE', 'KIND', 'SINCE', 'DEPLOYMENT', 'BY'];
      const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
      for (const row of [header, ...rows])
        process.stdout.write(
          `${row
            .map((cell, i) => cell.padEnd(widths[i]!))
            .join('  ')
            .trimEnd()}\n`,
        );
    });
}

/**
 * What `materi rollback` and `materi history` do when they run; releases.ts registers them.
 *
 * @module
 */
import { BadInputError } from '../errors/index.js';
import { type DeploymentView, FINAL_STATUSES } from '../orchestrator/index.js';
import type { Release } from '../orchestrator/ledger.js';
import { loadSettings } from '../runtime/config.js';
import { apiRequest } from './client.js';
import { InterruptTrap } from './interrupt.js';
import { exitCodeFor, ProgressPrinter } from './progress.js';
import { whoAmI } from './shared.js';

const POLL_MS = 300;

/** A release as the API sends it (times in RFC 3339). */
type ReleaseJson = Omit<Release, 'since' | 'until'> & { since: string; until?: string };

export interface RollbackOptions {
  env: string;
  to?: string;
  reason?: string;
  detach?: boolean;
  json?: boolean;
}

/** `materi rollback <project> --env <environment>`: starts the rollback on the server and follows it. */
export async function rollback(project: string, options: RollbackOptions): Promise<void> {
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
}

/** `materi history <project>`: the releases, newest first, as a table or JSON. */
export async function history(
  project: string,
  options: { env?: string; limit: string; json?: boolean },
): Promise<void> {
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
}

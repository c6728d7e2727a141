/** What `materi deploy`, `cancel` and `status` do when they run; deploy.ts registers them. */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { BadInputError, ConflictError } from '../errors/index.js';
import {
  type DeploymentView,
  type DeployRequest,
  FINAL_STATUSES,
  type Orchestrator,
} from '../orchestrator/index.js';
import { loadPlanFile } from '../orchestrator/plan/index.js';
import { killGroupsInFlight } from '../orchestrator/providers/index.js';
import { loadSettings, type Settings } from '../runtime/config.js';
import { createLogger } from '../runtime/logging.js';
import { COMPONENTS, type Stack, startStack } from '../runtime/stack.js';
import { apiRequest } from './client.js';
import { InterruptTrap } from './interrupt.js';
import { exitCodeFor, ProgressPrinter } from './progress.js';
import { announceBackend, parseVars, whoAmI } from './shared.js';

/** What `deploy` sends: the request of `POST /api/deployments` (the plan's text as `plan`). */
type DeployBody = Omit<DeployRequest, 'planText'> & { plan: string };

export interface DeployOptions {
  version: string;
  env?: string;
  var: string[];
  detach?: boolean;
  standalone?: boolean;
  json?: boolean;
  queue?: boolean;
  overrideFreeze?: boolean;
  reason?: string;
}

/** Says that a deployment overrode a freeze (stdout while following it, stderr with --detach). */
function announceFreezeOverride(view: DeploymentView, options: { json?: boolean; detach?: boolean }): void {
  const o = view.freezeOverride;
  if (!o || options.json) return;
  (options.detach ? process.stderr : process.stdout).write(
    `! freeze overridden by ${o.by}: ${o.window} — reason: ${o.reason}\n`,
  );
}

/** `materi deploy <plan>`: validates the plan, then runs it here (--standalone) or on the server. */
export async function deploy(file: string, options: DeployOptions): Promise<void> {
  const vars = parseVars(options.var);
  if (options.standalone && options.detach) {
    throw new BadInputError(
      '--detach needs a running server (materi up); --standalone runs the deployment in this process and waits',
    );
  }
  // Validate here first: a bad plan fails fast with the path of the error (exit 2).
  await loadPlanFile(file, { version: options.version, environment: options.env, vars });
  const request: DeployBody = {
    plan: await readFile(file, 'utf8'),
    planSource: file,
    baseDir: dirname(resolve(file)),
    version: options.version,
    environment: options.env,
    vars,
    triggeredBy: whoAmI(),
    queue: options.queue,
    overrideFreeze: options.overrideFreeze,
    overrideReason: options.reason,
  };
  const settings = loadSettings();
  const printer = new ProgressPrinter(process.stdout, options.json ?? false);
  if (options.standalone) await deployStandalone(settings, request, printer, options.json);
  else await deployThroughServer(settings, request, printer, options);
}

/** `materi cancel <id>`. */
export async function cancel(id: string, options: { rollback?: boolean; json?: boolean }): Promise<void> {
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
    options.json ? `${JSON.stringify(result)}\n` : `cancel requested for ${result.id} (${result.status})\n`,
  );
}

/** `materi status [id]`. */
export async function status(id: string | undefined, options: { json?: boolean }): Promise<void> {
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
      ...(view.waitingFor
        ? [
            `waiting for approval of ${view.waitingFor.gate} (approvers: ${view.waitingFor.approvers}) since ${view.waitingFor.since}, until ${view.waitingFor.deadline}: materi approve ${view.id} | materi reject ${view.id}`,
          ]
        : []),
      ...Object.entries(view.state.stages).map(
        ([name, s]) => `  stage ${name}: ${s.status}${s.error ? ` — ${s.error}` : ''}`,
      ),
      ...(view.reason ? [`reason: ${view.reason}`] : []),
      ...(view.freezeOverride
        ? [
            `freeze overridden by ${view.freezeOverride.by}: ${view.freezeOverride.window} — reason: ${view.freezeOverride.reason}`,
          ]
        : []),
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
        `${v.id}  ${v.createdAt}  ${v.project} ${v.version} → ${v.environment}  ${v.status}${v.waitingFor ? ` (waiting for approval of ${v.waitingFor.gate})` : ''}\n`,
      );
}

/** How long Ctrl-C waits for the cancel to settle before killing the stage commands itself. */
const CANCEL_DEADLINE_MS = 15_000;
/** After killing them, how long the saga gets to record the cancel before the fail-safe. */
const SETTLE_AFTER_KILL_MS = 5_000;
/** A second Ctrl-C exits after at most this long (recording the end of the deployment). */
const FORCED_EXIT_MS = 2_000;
const POLL_MS = 250;

function signalName(signal: NodeJS.Signals): string {
  return signal === 'SIGINT' ? 'Ctrl-C' : signal;
}

/**
 * `deploy --standalone`: the orchestrator and the workers run in this process, so stopping it
 * stops the deployment. Ctrl-C (or SIGTERM) cancels the deployment and waits for the cancel to
 * settle — the stage command's process group is stopped by the cancel — and exits 4; if the cancel
 * does not settle in time, the stage commands are killed and the deployment is recorded FAILED. A
 * second Ctrl-C kills the stage commands and exits at once, recording the deployment FAILED.
 */
async function deployStandalone(
  settings: Settings,
  request: DeployBody,
  printer: ProgressPrinter,
  json?: boolean,
): Promise<void> {
  const logger = createLogger({
    name: 'deploy',
    level: settings.logLevel === 'info' ? 'warn' : settings.logLevel,
  });
  let orchestrator: Orchestrator | undefined;
  let id: string | undefined;
  const trap = new InterruptTrap((signal) => {
    const killed = killGroupsInFlight();
    process.stderr.write(
      `materi: ${signalName(signal)} again: stopping now${killed.length > 0 ? ` (killed ${killed.length} stage command${killed.length === 1 ? '' : 's'})` : ''}\n`,
    );
    const exit = (code: number): never => process.exit(code);
    const [running, runningId] = [orchestrator, id];
    if (!running || !runningId) return exit(trap.exitCode);
    setTimeout(() => exit(trap.exitCode), FORCED_EXIT_MS);
    running
      .abandon(
        runningId,
        `materi deploy --standalone was stopped (${signalName(signal)} twice) before its cancel finished`,
      )
      .then(
        (view) => {
          printer.update(view);
          exit(FINAL_STATUSES.includes(view.status) ? exitCodeFor(view.status) : trap.exitCode);
        },
        () => exit(trap.exitCode),
      );
  });
  let stack: Stack | undefined;
  try {
    stack = await startStack({
      settings,
      logger,
      role: 'deploy --standalone',
      // The notifier runs only with a settings file: standalone has no local inbox to post to.
      components: COMPONENTS.filter((c) => c !== 'shield' && (c !== 'notifier' || settings.notifierConfig)),
    });
    announceBackend(stack.bus);
    orchestrator = stack.orchestrator!;
    if (trap.received) {
      process.stderr.write(`materi: ${signalName(trap.received)}: stopped before the deployment started\n`);
      process.exitCode = trap.exitCode;
      return;
    }
    const submitted = await orchestrator.submit({ ...request, planText: request.plan });
    id = submitted.id;
    announceFreezeOverride(submitted, { json });
    const final = await followInProcess(orchestrator, submitted.id, printer, trap);
    process.exitCode = FINAL_STATUSES.includes(final.status) ? exitCodeFor(final.status) : 1;
  } finally {
    await stack?.close();
    trap.dispose();
  }
}

/** Follows a deployment run by this process; on Ctrl-C, cancels it (see {@link deployStandalone}). */
async function followInProcess(
  orchestrator: Orchestrator,
  id: string,
  printer: ProgressPrinter,
  trap: InterruptTrap,
): Promise<DeploymentView> {
  let cancelledAt: number | undefined;
  let killedAt: number | undefined;
  for (;;) {
    const view = await orchestrator.get(id);
    printer.update(view);
    if (FINAL_STATUSES.includes(view.status)) return view;
    const signal = trap.received;
    if (signal && cancelledAt === undefined) {
      cancelledAt = Date.now();
      process.stderr.write(
        `\nmateri: ${signalName(signal)}: cancelling deployment ${id}, waiting up to ${CANCEL_DEADLINE_MS / 1000} s (${signalName(signal)} again to stop at once)\n`,
      );
      await orchestrator.cancel(id, { by: `${whoAmI()} (${signalName(signal)})` }).catch((error: unknown) => {
        // It ended meanwhile: the next look shows how.
        if (!(error instanceof ConflictError)) throw error;
      });
      continue;
    }
    if (
      cancelledAt !== undefined &&
      killedAt === undefined &&
      Date.now() - cancelledAt > CANCEL_DEADLINE_MS
    ) {
      killedAt = Date.now();
      const killed = killGroupsInFlight();
      process.stderr.write(
        `materi: the cancel did not finish within ${CANCEL_DEADLINE_MS / 1000} s${killed.length > 0 ? `; killed ${killed.length} stage command${killed.length === 1 ? '' : 's'}` : ''}\n`,
      );
    }
    if (killedAt !== undefined && Date.now() - killedAt > SETTLE_AFTER_KILL_MS) {
      const ended = await orchestrator.abandon(
        id,
        `the cancel (${signalName(signal!)}) did not finish within ${(CANCEL_DEADLINE_MS + SETTLE_AFTER_KILL_MS) / 1000} s; materi deploy --standalone stopped it`,
      );
      printer.update(ended);
      if (!FINAL_STATUSES.includes(ended.status))
        process.stderr.write(
          `materi: deployment ${id} is ${ended.status}, run by another orchestrator now\n`,
        );
      return ended;
    }
    await trap.sleep(POLL_MS);
  }
}

/**
 * `deploy` against a server: the deployment runs there. Ctrl-C stops following it — the
 * deployment keeps running — and says how to cancel it.
 */
async function deployThroughServer(
  settings: Settings,
  request: DeployBody,
  printer: ProgressPrinter,
  options: DeployOptions,
): Promise<void> {
  let id: string | undefined;
  const trap = new InterruptTrap(() => process.exit(trap.exitCode));
  trap.signal.addEventListener('abort', () => {
    const what = signalName(trap.received!);
    process.stderr.write(
      id
        ? `\nmateri: ${what}: stopped following; deployment ${id} keeps running on the server (${settings.apiUrl}).\n` +
            `  cancel it: materi cancel ${id}   (add --rollback to undo the stages it deployed)\n` +
            `  follow it: materi status ${id}\n`
        : `\nmateri: ${what}: stopped; if the server accepted the deployment, it keeps running (materi status lists it)\n`,
    );
    process.exit(trap.exitCode);
  });
  try {
    const view = await apiRequest<DeploymentView>(settings, 'POST', '/api/deployments', request);
    id = view.id;
    announceFreezeOverride(view, options);
    if (options.detach) {
      process.stdout.write(
        options.json ? `${JSON.stringify({ id: view.id, status: view.status })}\n` : `${view.id}\n`,
      );
      return;
    }
    for (;;) {
      const current = await apiRequest<DeploymentView>(settings, 'GET', `/api/deployments/${id}/saga`);
      printer.update(current);
      if (FINAL_STATUSES.includes(current.status)) {
        process.exitCode = exitCodeFor(current.status);
        return;
      }
      await trap.sleep(POLL_MS);
    }
  } finally {
    trap.dispose();
  }
}

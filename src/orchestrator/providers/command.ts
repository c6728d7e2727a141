import { resolve } from 'node:path';
import { describeCause } from '../../errors/index.js';
import { stageEnvironment } from '../../runtime/references.js';
import { ProviderFailure } from './errors.js';
import { OutputTail } from './output-tail.js';
import { stopGroup, trackGroup } from './process-group.js';
import { checkVersion, maskSecrets, resolveSettings } from './resolve-settings.js';
import type { CommandSettings } from './settings.js';
import { shellRunner } from './shell-runner.js';
import type { ProviderContext, StageOutcome, StageProvider } from './types.js';

/**
 * Runs shell commands (`/bin/sh -c`) to deploy and roll back: an ssh/rsync script, a CLI, a
 * Makefile target. The command runs as the leader of its own process group; on timeout or cancel
 * the whole group gets SIGTERM, then SIGKILL after `gracePeriod`, so nothing it started survives.
 * On success, processes it left in the background are not touched (a command may start a daemon).
 *
 * Environment: the orchestrator's, plus `env` from the settings and
 * `MATERI_VERSION` (the version this action installs), `MATERI_PREVIOUS_VERSION`,
 * `MATERI_DEPLOYED_VERSION` (the deployment's new version), `MATERI_ACTION` (deploy|rollback),
 * `MATERI_DEPLOYMENT_ID`, `MATERI_ENVIRONMENT`, `MATERI_PROJECT`, `MATERI_STAGE`, `MATERI_SERVICES`.
 */
export function createCommandProvider(settings: CommandSettings): StageProvider {
  return {
    type: 'command',
    deploy: (context) =>
      runCommand(
        settings,
        context,
        'deploy',
        settings.deploy,
        checkVersion(context.deployment.version, 'version'),
      ),
    rollback: async (context) => {
      const previous = context.deployment.previousVersion;
      if (settings.rollback === undefined && previous === undefined)
        throw new ProviderFailure('no previous version is known and no rollback command is set');
      return runCommand(
        settings,
        context,
        'rollback',
        settings.rollback ?? settings.deploy,
        previous === undefined ? undefined : checkVersion(previous, 'previous version'),
      );
    },
  };
}

async function runCommand(
  settings: CommandSettings,
  context: ProviderContext,
  action: 'deploy' | 'rollback',
  commandText: string,
  version: string | undefined,
): Promise<StageOutcome> {
  const { deployment, stage, signal } = context;
  const resolved = resolveSettings({ command: commandText, env: settings.env }, context, version);
  const cwd = resolve(context.baseDir, settings.cwd ?? '.');
  const env: NodeJS.ProcessEnv = {
    ...stageEnvironment(),
    ...resolved.value.env,
    MATERI_VERSION: version ?? '',
    MATERI_PREVIOUS_VERSION: deployment.previousVersion ?? '',
    MATERI_DEPLOYED_VERSION: deployment.version,
    MATERI_ACTION: action,
    MATERI_DEPLOYMENT_ID: deployment.id,
    MATERI_ENVIRONMENT: deployment.environment,
    MATERI_PROJECT: deployment.project,
    MATERI_STAGE: stage.name,
    MATERI_SERVICES: stage.services.join(','),
  };
  context.logger.info({ stage: stage.name, action, cwd }, 'running stage command');
  const result = await runShell(resolved.value.command, {
    cwd,
    env,
    signal,
    gracePeriodMs: settings.gracePeriodMs,
  });
  const log = maskSecrets(result.output.text(), resolved.secrets);
  // Stopped on timeout or cancel: the stage runner words the message; the output is kept.
  if (result.aborted) throw new ProviderFailure('command stopped', log);
  if (result.error)
    throw new ProviderFailure(`cannot run the command in ${cwd}: ${describeCause(result.error)}`, log);
  if (result.code !== 0) {
    const last = result.output.lastStderrLine();
    const how = result.code === null ? `was killed by ${result.signal}` : `exited with code ${result.code}`;
    throw new ProviderFailure(`command ${how}${last ? `: ${maskSecrets(last, resolved.secrets)}` : ''}`, log);
  }
  return { artifacts: log ? [{ name: 'log', kind: 'text', value: log }] : [], ...(log ? { log } : {}) };
}

interface ShellResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: OutputTail;
  aborted: boolean;
  error?: Error;
}

/**
 * Runs `/bin/sh -c command` as a process group leader, started by the shell runner process (see
 * shell-runner.ts: a fork of this process would block its event loop); never rejects.
 */
function runShell(
  command: string,
  options: { cwd: string; env: NodeJS.ProcessEnv; signal: AbortSignal; gracePeriodMs: number },
): Promise<ShellResult> {
  const output = new OutputTail();
  return new Promise((done) => {
    if (options.signal.aborted) {
      done({ code: null, signal: null, output, aborted: true });
      return;
    }
    let pid: number | undefined;
    // Until the shell has exited (and, on abort, its group is gone), a forced exit can kill it.
    let untrack = () => {};
    let aborted = false;
    let stopping: Promise<unknown> | undefined;
    const onAbort = () => {
      aborted = true;
      if (pid !== undefined) stopping = stopGroup(pid, options.gracePeriodMs);
    };
    options.signal.addEventListener('abort', onAbort, { once: true });
    shellRunner.run(
      command,
      { cwd: options.cwd, env: options.env },
      {
        started(started) {
          pid = started;
          untrack = trackGroup(started);
          // Aborted while the runner was starting it.
          if (aborted) stopping = stopGroup(started, options.gracePeriodMs);
        },
        output: (chunk, stream) => output.write(chunk, stream),
        async ended(end) {
          options.signal.removeEventListener('abort', onAbort);
          // On abort, wait until the whole group is gone, not just the shell.
          if (stopping) await stopping;
          untrack();
          done({ code: end.code, signal: end.signal, error: end.error, output, aborted });
        },
      },
    );
  });
}

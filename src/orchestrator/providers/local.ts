import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { describeCause } from '../../errors/index.js';
import { stageEnvironment } from '../../runtime/references.js';
import { formatDuration } from '../plan/duration.js';
import { ProviderFailure } from './errors.js';
import { isRunning, processStartTime, stopGroup } from './process-group.js';
import { checkVersion, maskSecrets, resolveSettings } from './resolve-settings.js';
import type { LocalSettings } from './settings.js';
import type { Artifact, ProviderContext, StageOutcome, StageProvider } from './types.js';

/**
 * Runs a stage's service as a process on this machine — for demos, tests and single-host setups.
 * Deploy stops the running instance of the stage (recorded in a state file under the data dir),
 * starts the new version detached in its own process group (it outlives the orchestrator: it is
 * the deployed service), and waits until it answers `healthPath`. A process that exits or never
 * answers is stopped, with its group, and the deploy fails naming why. Rollback does the same with
 * the previous version (or only stops the instance when there is none).
 */
export function createLocalProvider(settings: LocalSettings): StageProvider {
  return {
    type: 'local',
    deploy: (context) =>
      replaceInstance(settings, context, checkVersion(context.deployment.version, 'version')),
    rollback: async (context) => {
      const previous = context.deployment.previousVersion;
      if (previous !== undefined)
        return replaceInstance(settings, context, checkVersion(previous, 'previous version'));
      const stopped = await stopLocalInstance(instanceKey(context), {
        gracePeriodMs: settings.gracePeriodMs,
      });
      return {
        artifacts: [],
        log: stopped
          ? `no previous version: stopped ${stopped.version} (pid ${stopped.pid})`
          : 'no previous version',
      };
    },
  };
}

/** What the state file of a running local instance holds. */
export interface LocalInstance {
  pid: number;
  /** Process start time (Linux clock ticks), to tell the process from a later one with its pid. */
  startTime?: string;
  version: string;
  port: number;
  url: string;
  deploymentId: string;
  startedAt: string;
  /** File receiving the process's stdout and stderr. */
  logFile: string;
}

/** Which instance: one per project, environment and stage. */
export interface LocalInstanceKey {
  dataDir: string;
  project: string;
  environment: string;
  stage: string;
}

/** Where the state of an instance is kept: `<dataDir>/local/<project>-<environment>-<stage>.json`. */
export function localStatePath(key: LocalInstanceKey): string {
  return join(key.dataDir, 'local', `${key.project}-${key.environment}-${key.stage}.json`);
}

function logPath(key: LocalInstanceKey): string {
  return join(key.dataDir, 'local', `${key.project}-${key.environment}-${key.stage}.log`);
}

/** The recorded instance, if its process still runs. */
export async function readLocalInstance(key: LocalInstanceKey): Promise<LocalInstance | undefined> {
  let instance: LocalInstance;
  try {
    instance = JSON.parse(await readFile(localStatePath(key), 'utf8')) as LocalInstance;
  } catch {
    return undefined;
  }
  if (!Number.isInteger(instance.pid) || !isRunning(instance.pid)) return undefined;
  const startTime = processStartTime(instance.pid);
  if (instance.startTime && startTime && startTime !== instance.startTime) return undefined;
  return instance;
}

/**
 * Stops the recorded instance (SIGTERM to its process group, SIGKILL after the grace period) and
 * removes its state file. Resolves with what was stopped, or undefined when nothing ran.
 */
export async function stopLocalInstance(
  key: LocalInstanceKey,
  options: { gracePeriodMs?: number } = {},
): Promise<LocalInstance | undefined> {
  const instance = await readLocalInstance(key);
  if (instance) await stopGroup(instance.pid, options.gracePeriodMs ?? 5000);
  await rm(localStatePath(key), { force: true });
  return instance;
}

function instanceKey(context: ProviderContext): LocalInstanceKey {
  return {
    dataDir: resolve(context.dataDir),
    project: context.deployment.project,
    environment: context.deployment.environment,
    stage: context.stage.name,
  };
}

const LOG_ROTATE_BYTES = 5 * 1024 * 1024;
const PROBE_INTERVAL_MS = 100;

async function replaceInstance(
  settings: LocalSettings,
  context: ProviderContext,
  version: string,
): Promise<StageOutcome> {
  const key = instanceKey(context);
  const lines: string[] = [];
  const port = String(settings.port);
  const { value: s, secrets } = resolveSettings(
    { command: settings.command, env: settings.env, host: settings.host },
    context,
    version,
    { PORT: port },
  );

  const stopped = await stopLocalInstance(key, { gracePeriodMs: settings.gracePeriodMs });
  if (stopped) lines.push(`stopped ${stopped.version} (pid ${stopped.pid})`);
  if (await portAnswers(s.host, settings.port))
    throw new ProviderFailure(
      `local: port ${settings.port} on ${s.host} is in use by another process`,
      lines.join('\n'),
    );

  await mkdir(join(key.dataDir, 'local'), { recursive: true });
  const logFile = logPath(key);
  const size = await stat(logFile).then(
    (st) => st.size,
    () => 0,
  );
  if (size > LOG_ROTATE_BYTES) await truncate(logFile, 0);
  const log = await open(logFile, 'a');
  const logStart = size > LOG_ROTATE_BYTES ? 0 : size;
  const cwd = resolve(context.baseDir, settings.cwd ?? '.');
  const [program, ...args] = s.command as [string, ...string[]];
  let exit: string | undefined;
  let started: Promise<void>;
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(program, args, {
      cwd,
      detached: true,
      stdio: ['ignore', log.fd, log.fd],
      env: {
        ...stageEnvironment(),
        ...s.env,
        PORT: port,
        MATERI_VERSION: version,
        MATERI_DEPLOYMENT_ID: context.deployment.id,
        MATERI_ENVIRONMENT: context.deployment.environment,
        MATERI_PROJECT: context.deployment.project,
        MATERI_STAGE: context.stage.name,
      },
    });
    // Listen before anything awaits: 'spawn', 'error' and 'exit' may fire on the next tick.
    started = new Promise<void>((ready, failed) => {
      child.once('spawn', () => ready());
      child.once('error', (error) => failed(error));
    });
    started.catch(() => {}); // awaited below, after the log file is closed

    child.once('exit', (code, signal) => {
      exit = code === null ? `was killed by ${signal}` : `exited with code ${code}`;
    });
    child.unref();
  } finally {
    await log.close();
  }
  try {
    await started;
  } catch (error) {
    throw new ProviderFailure(
      `local: cannot start ${JSON.stringify(program)} in ${cwd}: ${describeCause(error)}`,
    );
  }
  const pid = child.pid!;
  const url = `http://${s.host}:${settings.port}`;
  const instance: LocalInstance = {
    pid,
    startTime: processStartTime(pid),
    version,
    port: settings.port,
    url,
    deploymentId: context.deployment.id,
    startedAt: new Date().toISOString(),
    logFile,
  };
  await writeFile(localStatePath(key), `${JSON.stringify(instance, null, 2)}\n`);
  lines.push(`started ${version} (pid ${pid})`);
  context.logger.info({ childPid: pid, version, port: settings.port }, 'local process started');

  const healthUrl = `${url}${settings.healthPath}`;
  const abandon = async (message: string) => {
    await stopGroup(pid, settings.gracePeriodMs);
    await rm(localStatePath(key), { force: true });
    const output = maskSecrets(await readLogTail(logFile, logStart), secrets);
    const last = output
      .split('\n')
      .filter((l) => l.trim())
      .pop();
    return new ProviderFailure(
      `local: ${message}${last ? `: ${last.trim().slice(0, 300)}` : ''}`,
      [...lines, output].filter(Boolean).join('\n'),
    );
  };

  const deadline = Date.now() + settings.startTimeoutMs;
  for (;;) {
    if (context.signal.aborted) throw await abandon(`${version} stopped while starting`);
    if (exit) throw await abandon(`${version} ${exit} before answering ${settings.healthPath}`);
    const status = await probe(healthUrl, context.signal);
    if (status !== undefined && status >= 200 && status < 300) break;
    if (Date.now() >= deadline) {
      const answered = status === undefined ? 'did not answer' : `answered ${status} on`;
      throw await abandon(
        `${version} ${answered} ${healthUrl} within ${formatDuration(settings.startTimeoutMs)}`,
      );
    }
    await new Promise((r) => setTimeout(r, PROBE_INTERVAL_MS));
  }
  lines.push(`${version} answers ${healthUrl}`);
  const artifacts: Artifact[] = [
    { name: 'url', kind: 'url', value: url },
    { name: 'pid', kind: 'id', value: String(pid) },
  ];
  for (const artifact of artifacts) context.record(artifact);
  return { artifacts, log: lines.join('\n') };
}

/** The status of a GET, or undefined when nothing answered. */
async function probe(url: string, signal: AbortSignal): Promise<number | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(1000)]) });
    await response.body?.cancel();
    return response.status;
  } catch {
    return undefined;
  }
}

/** Whether something accepts TCP connections on the port. */
function portAnswers(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host, port });
    const finish = (answer: boolean) => {
      socket.destroy();
      done(answer);
    };
    socket.setTimeout(500, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

async function readLogTail(file: string, from: number): Promise<string> {
  try {
    const text = (await readFile(file)).subarray(from).toString('utf8');
    return text.length > 64 * 1024 ? text.slice(-64 * 1024) : text;
  } catch {
    return '';
  }
}

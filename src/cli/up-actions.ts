/**
 * What `materi up` and `materi worker` do when they run; up.ts registers them.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BadInputError } from '../errors/index.js';
import type { DeploymentView, Orchestrator } from '../orchestrator/index.js';
import { stopLocalInstance } from '../orchestrator/providers/index.js';
import { loadSettings, type Settings } from '../runtime/config.js';
import { createLogger, type Logger } from '../runtime/logging.js';
import { COMPONENTS, type ComponentName, type Stack, startStack } from '../runtime/stack.js';
import { InterruptTrap } from './interrupt.js';
import { announceBackend } from './shared.js';

/** The demo plan: three small local services deployed with the `local` provider. */
export const DEMO_PLAN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'local.yaml');

/** The demo plan's stages and the vars that set their ports (4701–4703 when not given). */
const DEMO_PORT_VARS = { api: 'API_PORT', worker: 'WORKER_PORT', web: 'WEB_PORT' } as const;

function port(value: string | undefined, settings: Settings): number {
  if (value === undefined) return settings.port;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new BadInputError(`--port must be a port number, got "${value}"`);
  return n;
}

/**
 * Resolves when the process is asked to stop (Ctrl-C or SIGTERM). From then on a second SIGINT or
 * SIGTERM ends the process at once (128 + the signal's number), leaving work in flight to be reclaimed.
 */
function untilStopped(): Promise<string> {
  const trap = new InterruptTrap((signal) => {
    process.stderr.write(`materi: ${signal} again: exiting now\n`);
    process.exit(signal === 'SIGTERM' ? 143 : 130);
  });
  return new Promise((resolve) => {
    trap.signal.addEventListener('abort', () => resolve(trap.received!), { once: true });
  });
}

/**
 * Stops the stack within `MATERI_SHUTDOWN_TIMEOUT_MS` and exits 0: work still in flight then stays
 * pending for another consumer, and what it left running (a stage's command) must not keep the
 * process alive.
 */
async function shutDown(stack: Stack, logger: Logger, signal: string, timeoutMs: number): Promise<never> {
  process.stderr.write(`materi: ${signal}: stopping (finishing work in flight, up to ${timeoutMs} ms)…\n`);
  // A step that hangs past the deadline (an unreachable backend) must not keep the process alive.
  const force = setTimeout(() => {
    process.stderr.write('materi: shutdown took too long; exiting\n');
    process.exit(1);
  }, timeoutMs + 10_000);
  force.unref();
  await stack.close();
  clearTimeout(force);
  logger.info('stopped');
  process.stderr.write('materi: stopped\n');
  process.exit(0);
}

/** `materi up`: the whole stack in this process until Ctrl-C (with --demo, a demo deployment too). */
export async function up(options: { demo?: boolean; port?: string }): Promise<void> {
  const settings = loadSettings();
  const logger = createLogger({ name: 'up', level: settings.logLevel });
  // The demo marks its v3 as a faulty release: its services start but fail their health checks.
  if (options.demo) process.env.DEMO_UNHEALTHY_VERSIONS = 'v3';
  const stack = await startStack({
    settings,
    logger,
    role: 'up',
    components: COMPONENTS,
    http: { port: port(options.port, settings) },
  });
  // Listening before saying it runs: a supervisor may signal as soon as it reads that.
  const stopped = untilStopped();
  announceBackend(stack.bus);
  process.stderr.write(`materi: store ${stack.store!.dialect} ${stack.store!.describe()}\n`);
  process.stdout.write(`Materi Deploy is running. Dashboard: ${stack.url}/\n`);
  if (!settings.apiToken && !settings.tokensFile)
    process.stdout.write('No MATERI_API_TOKEN set: writes are accepted from this machine only.\n');
  if (options.demo) {
    const demo = runDemo(stack.orchestrator!, stack.url!).catch((error: Error) => {
      process.stderr.write(`materi: demo failed: ${error.message}\n`);
    });
    const signal = await Promise.race([stopped, demo.then(() => stopped)]);
    await stopDemoServices(settings);
    await shutDown(stack, logger, signal, settings.shutdownTimeoutMs);
    return;
  }
  await shutDown(stack, logger, await stopped, settings.shutdownTimeoutMs);
}

/** `materi worker <name>`: one component in this process until Ctrl-C. */
export async function worker(name: string, options: { concurrency?: string; port?: string }): Promise<void> {
  if (!(COMPONENTS as readonly string[]).includes(name)) {
    throw new BadInputError(`unknown worker "${name}": use one of ${COMPONENTS.join(', ')}`);
  }
  const concurrency = options.concurrency === undefined ? undefined : Number(options.concurrency);
  if (concurrency !== undefined && !(Number.isInteger(concurrency) && concurrency > 0)) {
    throw new BadInputError(`--concurrency must be a positive integer, got "${options.concurrency}"`);
  }
  const settings = loadSettings();
  const logger = createLogger({ name: `worker-${name}`, level: settings.logLevel });
  const component = name as ComponentName;
  const stack = await startStack({
    settings,
    logger,
    role: `worker ${name}`,
    components: [component],
    concurrency: concurrency ? { [component]: concurrency } : undefined,
    http: options.port === undefined ? undefined : { port: port(options.port, settings) },
  });
  const stopped = untilStopped();
  announceBackend(stack.bus);
  process.stderr.write(`materi: worker ${name} running${stack.url ? ` (${stack.url}/metrics)` : ''}\n`);
  await shutDown(stack, logger, await stopped, settings.shutdownTimeoutMs);
}

function summary(view: DeploymentView): string {
  const took = view.finishedAt
    ? ((Date.parse(view.finishedAt) - Date.parse(view.createdAt)) / 1000).toFixed(1)
    : '?';
  const stages = Object.entries(view.state.stages)
    .map(([name, s]) => `${name} ${s.status}`)
    .join(', ');
  const words: Record<string, string> = {
    SUCCESS: 'succeeded',
    ROLLED_BACK: 'rolled back',
    FAILURE: 'failed',
    CANCELLED: 'was cancelled',
  };
  return `deployment ${view.version} ${words[view.status] ?? view.status} in ${took} s (${stages})${view.status === 'SUCCESS' ? '' : ` — ${view.reason}`}`;
}

/**
 * The demo: v1 of three local services (the starting point), then v2 (succeeds), then v3 — a
 * faulty release whose health checks fail — which the health gate catches and rolls back.
 */
async function runDemo(orchestrator: Orchestrator, url: string): Promise<void> {
  const planText = await readFile(DEMO_PLAN, 'utf8');
  const ports = await freePorts(Object.keys(DEMO_PORT_VARS).length);
  const vars: Record<string, string> = {};
  const services = Object.entries(DEMO_PORT_VARS).map(([stage, name], i) => {
    vars[name] = String(ports[i]);
    return `${stage} http://127.0.0.1:${ports[i]}/`;
  });
  process.stdout.write(`demo: services ${services.join(', ')}\n`);
  const deploy = async (version: string) => {
    const view = await orchestrator.submit({
      planText,
      planSource: DEMO_PLAN,
      baseDir: dirname(resolve(DEMO_PLAN)),
      version,
      vars,
      triggeredBy: 'demo',
      queue: true,
    });
    process.stdout.write(`demo: deploying ${version} (${url}/deployments/${view.id})\n`);
    const done = await orchestrator.waitFor(view.id, 120_000);
    process.stdout.write(`demo: ${summary(done)}\n`);
    return done;
  };
  await deploy('v1');
  await deploy('v2');
  await deploy('v3');
  process.stdout.write(`demo: done. The dashboard shows all three: ${url}/  (Ctrl-C to stop)\n`);
}

/**
 * `count` distinct ports free on 127.0.0.1 right now. The demo's services use them instead of the
 * plan's fixed defaults, which may be taken on this host; they are held together (so they differ)
 * and released just before the services start.
 */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, async () => {
      const server = createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', resolve);
      });
      return server;
    }),
  );
  const ports = servers.map((server) => (server.address() as AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** Stops the demo's local services so Ctrl-C leaves nothing running. */
async function stopDemoServices(settings: Settings): Promise<void> {
  for (const stage of Object.keys(DEMO_PORT_VARS)) {
    await stopLocalInstance(
      { dataDir: settings.dataDir, project: 'demo', environment: 'local', stage },
      { gracePeriodMs: 2000 },
    ).catch(() => {});
  }
}

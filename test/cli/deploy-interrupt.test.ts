import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { killGroupsInFlight } from '../../src/orchestrator/providers/index.js';
import { loadSettings } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/runtime/logging.js';
import { type Stack, startStack } from '../../src/runtime/stack.js';
import { openStore } from '../../src/store/index.js';
import { isRunning } from '../orchestrator/providers/fixtures.js';
import { eventually } from '../support/redis.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'materi-deploy-interrupt-'));
});
afterEach(async () => {
  // A failing test must not leave the stage's processes behind.
  const leader = Number(await readFile(join(dir, 'child.pid'), 'utf8').catch(() => ''));
  if (leader > 0 && isRunning(leader)) {
    try {
      process.kill(-leader, 'SIGKILL');
    } catch {}
  }
  await rm(dir, { recursive: true, force: true });
});

/** The embedded backend in the test's own data dir, whatever the machine's environment says. */
function embeddedEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, MATERI_LOG_LEVEL: 'warn', MATERI_DATA_DIR: dir, ...extra };
  for (const name of ['MATERI_REDIS_URL', 'MATERI_REDIS_CLUSTER', 'MATERI_DATABASE_URL', 'MATERI_API_TOKEN'])
    delete env[name];
  if (!extra.MATERI_API_URL) delete env.MATERI_API_URL;
  return env;
}

/**
 * A plan whose one stage runs a shell (the command's process group leader) that starts a
 * grandchild; both write their pid, then wait. With `stubborn`, both ignore SIGTERM.
 */
async function writePlan(stubborn = false): Promise<string> {
  const ignore = stubborn ? `trap '' TERM; ` : '';
  const grandchild = `${ignore}echo $$ > ${join(dir, 'grandchild.pid')}; exec sleep 300`;
  const deploy = `${ignore}echo $$ > ${join(dir, 'child.pid')}; sh -c ${JSON.stringify(grandchild)} & wait; wait`;
  const file = join(dir, 'plan.yaml');
  await writeFile(
    file,
    [
      'project: shop',
      'environment: staging',
      'services:',
      '  api: {}',
      'stages:',
      '  - name: api',
      '    services: [api]',
      '    timeout: 5m',
      '    provider:',
      '      type: command',
      '      gracePeriod: 5m',
      `      deploy: ${JSON.stringify(deploy)}`,
      '',
    ].join('\n'),
  );
  return file;
}

interface Running {
  child: ChildProcess;
  output(): { stdout: string; stderr: string };
  exited: Promise<number | null>;
}

function startCli(args: string[], env: NodeJS.ProcessEnv): Running {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => ({ stdout, stderr }), exited };
}

/** The pids of the stage's shell and its grandchild, once both run. */
async function stagePids(): Promise<{ child: number; grandchild: number }> {
  const read = async (name: string) => Number((await readFile(join(dir, name), 'utf8')).trim());
  return eventually(
    async () => {
      const pids = { child: await read('child.pid'), grandchild: await read('grandchild.pid') };
      return pids.child > 0 && pids.grandchild > 0 && isRunning(pids.grandchild) ? pids : undefined;
    },
    60_000,
    50,
  );
}

async function deploymentRows() {
  const store = await openStore({ dataDir: dir, logger: silentLogger() });
  try {
    return await store.db
      .selectFrom('orchestrator_deployments')
      .select(['id', 'status', 'reason', 'state'])
      .execute();
  } finally {
    await store.close();
  }
}

describe('materi deploy --standalone, interrupted', () => {
  it('cancels the deployment on Ctrl-C, stops the stage command with its grandchildren, and exits 4', async () => {
    const plan = await writePlan();
    const cli = startCli(['deploy', plan, '--version', 'v1', '--standalone'], embeddedEnv());
    try {
      const pids = await stagePids();
      cli.child.kill('SIGINT');
      expect(await cli.exited).toBe(4);
      const { stdout, stderr } = cli.output();
      expect(stderr).toMatch(/Ctrl-C: cancelling deployment dep-\w+/);
      expect(stdout).toContain('■ stage api cancelled');
      expect(stdout).toMatch(/■ CANCELLED in [\d.]+ s — cancelled by .+ \(Ctrl-C\)\n$/);
      const rows = await deploymentRows();
      expect(rows.map((r) => r.status)).toEqual(['CANCELLED']);
      expect(isRunning(pids.child)).toBe(false);
      expect(isRunning(pids.grandchild)).toBe(false);
    } finally {
      cli.child.kill('SIGKILL');
    }
  }, 90_000);

  it('cancels on SIGTERM too', async () => {
    const plan = await writePlan();
    const cli = startCli(['deploy', plan, '--version', 'v1', '--standalone', '--json'], embeddedEnv());
    try {
      const pids = await stagePids();
      cli.child.kill('SIGTERM');
      expect(await cli.exited).toBe(4);
      const last = JSON.parse(cli.output().stdout.trim().split('\n').at(-1)!);
      expect(last).toMatchObject({ status: 'CANCELLED', reason: expect.stringContaining('(SIGTERM)') });
      expect(isRunning(pids.grandchild)).toBe(false);
    } finally {
      cli.child.kill('SIGKILL');
    }
  }, 90_000);

  it('on a second Ctrl-C kills a command that ignores SIGTERM, records the deployment FAILED and exits', async () => {
    const plan = await writePlan(true);
    const cli = startCli(['deploy', plan, '--version', 'v1', '--standalone'], embeddedEnv());
    try {
      const pids = await stagePids();
      cli.child.kill('SIGINT');
      await eventually(() => cli.output().stderr.includes('cancelling deployment'), 30_000);
      // The cancel's SIGTERM is ignored (grace period 5 minutes): the command still runs.
      expect(isRunning(pids.grandchild)).toBe(true);
      cli.child.kill('SIGINT');
      const code = await cli.exited;
      const { stdout, stderr } = cli.output();
      expect(stderr).toContain('Ctrl-C again: stopping now (killed 1 stage command)');
      expect(await eventually(() => !isRunning(pids.child) && !isRunning(pids.grandchild))).toBe(true);
      const [row] = await deploymentRows();
      // Killing the group may let the saga record its cancel first; either way, not RUNNING.
      if (row!.status === 'CANCELLED') expect(code).toBe(4);
      else {
        expect(row!.status).toBe('FAILURE');
        expect(row!.reason).toBe(
          'materi deploy --standalone was stopped (Ctrl-C twice) before its cancel finished',
        );
        expect(code).toBe(1);
        expect(stdout).toContain(`■ FAILURE in`);
      }
    } finally {
      cli.child.kill('SIGKILL');
    }
  }, 90_000);
});

describe('materi deploy against a server, interrupted', () => {
  let stack: Stack | undefined;
  afterEach(async () => {
    killGroupsInFlight();
    await stack?.close();
    stack = undefined;
  });

  it('says the deployment keeps running on the server and how to cancel it', async () => {
    stack = await startStack({
      settings: loadSettings(embeddedEnv()),
      logger: silentLogger(),
      role: 'test server',
      components: ['orchestrator', 'validator', 'dependency-checker', 'health-monitor'],
      http: { port: 0 },
    });
    const plan = await writePlan();
    const cli = startCli(['deploy', plan, '--version', 'v1'], embeddedEnv({ MATERI_API_URL: stack.url! }));
    try {
      const pids = await stagePids();
      const id = (await eventually(() => /\((dep-\w+)\)/.exec(cli.output().stdout)))[1]!;
      cli.child.kill('SIGINT');
      expect(await cli.exited).toBe(130);
      const { stderr } = cli.output();
      expect(stderr).toContain(`deployment ${id} keeps running on the server (${stack.url})`);
      expect(stderr).toContain(`materi cancel ${id}`);
      const orchestrator = stack.orchestrator!;
      expect((await orchestrator.get(id)).status).toBe('RUNNING');
      expect(isRunning(pids.grandchild)).toBe(true);
      await orchestrator.cancel(id);
      expect((await orchestrator.waitFor(id, 30_000)).status).toBe('CANCELLED');
      expect(isRunning(pids.grandchild)).toBe(false);
    } finally {
      cli.child.kill('SIGKILL');
    }
  }, 90_000);
});

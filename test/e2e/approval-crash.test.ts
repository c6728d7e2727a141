/**
 * Approvals survive the orchestrator: deployments wait for a person, the orchestrator process is
 * SIGKILLed while they wait and a new one takes them over (same wait, same deadline, no second
 * `approval:requested`); `materi approve` and `materi reject` answer them; another one expires at
 * its deadline. On Redis + PostgreSQL and on the embedded backend.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerApprovalCommands } from '../../src/cli/approve.js';
import { ApprovalOutcome } from '../../src/events/index.js';
import type { DeploymentView } from '../../src/orchestrator/index.js';
import { loadSettings } from '../../src/runtime/config.js';
import { silentLogger } from '../../src/runtime/logging.js';
import { openStore, type Store } from '../../src/store/index.js';
import { runMateri } from '../support/materi-cli.js';
import { eventually } from '../support/redis.js';
import { type E2E, startE2E } from './support.js';

const DASHBOARD = 'http://dashboard.test:4600';

interface OrchestratorProcess {
  child: ChildProcess;
  url: string;
}

function startOrchestrator(env: Record<string, string>): Promise<OrchestratorProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'worker', 'orchestrator', '--port', '0'],
    {
      // A short lease: the survivor takes the deployments over soon after the kill.
      env: {
        ...process.env,
        ...env,
        MATERI_LEASE_MS: '1500',
        MATERI_API_URL: DASHBOARD,
        MATERI_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const url = /running \((http:\/\/[^/]+)\/metrics\)/.exec(err);
      if (url) resolve({ child, url: url[1]! });
    });
    child.once('exit', (code) => reject(new Error(`orchestrator exited with ${code}: ${err}`)));
  });
}

async function kill(orchestrator: OrchestratorProcess | undefined): Promise<void> {
  const child = orchestrator?.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

const plan = (approval: string) =>
  [
    'project: approvals',
    'services:',
    '  api: {}',
    'stages:',
    '  - { name: api, services: [api], provider: { type: command, deploy: "true" } }',
    'validation: { images: false, timeout: 30s }',
    'dependencies: { timeout: 30s }',
    `approval: ${approval}`,
    '',
  ].join('\n');

for (const backend of ['redis', 'embedded'] as const) {
  describe(`approvals across an orchestrator crash (${backend})`, () => {
    let e2e: E2E;
    let store: Store;
    let orchestrator: OrchestratorProcess | undefined;

    const api = async <T>(method: string, url: string, body?: unknown): Promise<T> => {
      const response = await fetch(`${orchestrator!.url}${url}`, {
        method,
        headers: body ? { 'content-type': 'application/json' } : {},
        body: body ? JSON.stringify(body) : undefined,
      });
      if (!response.ok) throw new Error(`${method} ${url}: ${response.status} ${await response.text()}`);
      return (await response.json()) as T;
    };
    const view = (id: string) => api<DeploymentView>('GET', `/api/deployments/${id}/saga`);
    const ended = (id: string) =>
      eventually(async () => {
        const current = await view(id);
        return ['SUCCESS', 'FAILURE', 'ROLLED_BACK', 'CANCELLED'].includes(current.status)
          ? current
          : undefined;
      }, 60_000);
    const waitingFor = (id: string) =>
      eventually(async () => {
        const current = await view(id);
        return current.waitingFor ? current : undefined;
      }, 60_000);
    const owner = async (id: string) =>
      (
        await store.db
          .selectFrom('orchestrator_deployments')
          .select('owner')
          .where('id', '=', id)
          .executeTakeFirstOrThrow()
      ).owner;
    const materi = async (args: string[]) => {
      vi.stubEnv('MATERI_API_URL', orchestrator!.url);
      try {
        return await runMateri([registerApprovalCommands], args);
      } finally {
        vi.unstubAllEnvs();
      }
    };

    beforeAll(async () => {
      // The gate workers run here; the orchestrator runs in a child process (killed below).
      e2e = await startE2E({ backend, components: ['validator', 'dependency-checker'] });
      const settings = loadSettings({ ...process.env, ...e2e.env });
      store = await openStore({
        databaseUrl: settings.databaseUrl,
        dataDir: settings.dataDir,
        logger: silentLogger(),
      });
      orchestrator = await startOrchestrator(e2e.env);
    }, 90_000);

    afterAll(async () => {
      await kill(orchestrator);
      await store?.close();
      await e2e?.close();
    }, 60_000);

    it('keeps waiting through a SIGKILL and a takeover; approved and rejected from the CLI; expires at its deadline', async () => {
      const submit = (environment: string, approval: string) =>
        api<DeploymentView>('POST', '/api/deployments', { plan: plan(approval), version: 'v1', environment });
      const approved = await submit('a', '{ required: true, timeout: 10m }');
      const rejected = await submit('b', '{ required: true, approvers: admin }');
      const before = await waitingFor(approved.id);
      expect(before.waitingFor).toMatchObject({
        kind: 'approval',
        gate: 'environment',
        approvers: 'deployer',
      });
      expect((await waitingFor(rejected.id)).waitingFor).toMatchObject({ approvers: 'admin' });
      const firstOwner = await owner(approved.id);

      await kill(orchestrator);
      orchestrator = await startOrchestrator(e2e.env);
      // The new process takes both over once the dead one's lease has expired.
      await eventually(async () => {
        const [a, b] = [await owner(approved.id), await owner(rejected.id)];
        return a !== null && a !== firstOwner && b !== null && b !== firstOwner;
      }, 60_000);
      // Give the resumed sagas time to reach the wait again (a lower bound only): a wait started
      // afresh would show a later deadline here.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const after = await view(approved.id);
      expect(after.status).toBe('RUNNING');
      expect(after.waitingFor).toEqual(before.waitingFor);

      const yes = await materi(['approve', approved.id, '--comment', 'ship it']);
      expect(yes.stderr).toBe('');
      expect(yes.code).toBe(0);
      expect(yes.stdout).toBe(`approved ${approved.id} (RUNNING)\n`);
      const no = await materi(['reject', rejected.id, '--comment', 'not today']);
      expect(no.code).toBe(0);

      const approvedEnd = await ended(approved.id);
      expect(approvedEnd.reason).toBeUndefined();
      expect(approvedEnd.status).toBe('SUCCESS');
      const rejectedEnd = await ended(rejected.id);
      expect(rejectedEnd.status).toBe('FAILURE');
      expect(rejectedEnd.reason).toMatch(/^rejected by \S+@\S+: not today$/);

      // A third one nobody answers.
      const expired = await submit('c', '{ required: true, timeout: 1s }');
      const expiredEnd = await ended(expired.id);
      expect(expiredEnd.status).toBe('FAILURE');
      expect(expiredEnd.reason).toMatch(/^approval for environment expired after 1s/);

      const events = await e2e.events();
      const of = (id: string, type: string) => events.filter((e) => e.deploymentId === id && e.type === type);
      const requested = of(approved.id, 'approval:requested');
      expect(requested).toHaveLength(1);
      expect(requested[0]!.data).toMatchObject({
        gate: 'environment',
        environment: 'a',
        url: `${DASHBOARD}/deployments/${approved.id}`,
      });
      expect(of(rejected.id, 'approval:requested')).toHaveLength(1);
      expect(of(approved.id, 'approval:completed').map((e) => e.data)).toMatchObject([
        { outcome: ApprovalOutcome.APPROVED, comment: 'ship it', by: expect.stringMatching(/@/) },
      ]);
      expect(of(rejected.id, 'approval:completed').map((e) => e.data)).toMatchObject([
        { outcome: ApprovalOutcome.REJECTED, comment: 'not today' },
      ]);
      expect(of(expired.id, 'approval:completed').map((e) => e.data)).toMatchObject([
        { outcome: ApprovalOutcome.EXPIRED, by: '' },
      ]);
      expect(of(approved.id, 'deployment:completed')).toHaveLength(1);

      // Nothing waits any more: 409, exit 1 with the one-line reason.
      const late = await materi(['approve', approved.id]);
      expect(late.code).toBe(1);
      expect(late.stderr).toMatch(/^materi: deployment \S+ does not wait for an approval \(it is SUCCESS/);
      const unknown = await materi(['reject', 'dep-000000000000']);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toBe('materi: no deployment with id dep-000000000000\n');
    }, 180_000);
  });
}

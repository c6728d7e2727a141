/**
 * Roles on every write route (real Redis + PostgreSQL, the whole stack): each route the server
 * registers with `write` or `admin` access is called without a token, and with a viewer, a deployer
 * limited to another environment, a deployer and an admin token. A route added without a case here
 * fails the test. The actor recorded is the token's name, whatever the body says.
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/api/index.js';
import { COMPONENTS } from '../../src/runtime/stack.js';
import { FailedEventStore } from '../../src/store/index.js';
import { type E2E, startE2E } from '../e2e/support.js';
import { eventually } from '../support/redis.js';

const SECRETS = {
  viewer: `mt_viewer_${randomUUID()}`,
  limited: `mt_limited_${randomUUID()}`,
  deployer: `mt_deployer_${randomUUID()}`,
  admin: `mt_admin_${randomUUID()}`,
};
const NAMES = { viewer: 'vera', limited: 'stan', deployer: 'dana', admin: 'ada' } as const;
type Caller = 'none' | keyof typeof SECRETS;
const CALLERS: Caller[] = ['none', 'viewer', 'limited', 'deployer', 'admin'];
/** What the body claims: ignored whenever a token authenticates the request. */
const SPOOFED = 'mallory';

/** Two command stages; with `approval`, the deployment waits for a person before its first stage. */
function plan(project: string, environment: string, approval: boolean): string {
  const stage = (name: string, dependsOn?: string) => [
    `  - name: ${name}`,
    `    services: [${name}]`,
    ...(dependsOn ? [`    dependsOn: [${dependsOn}]`] : []),
    '    timeout: 20s',
    '    provider: { type: command, deploy: "true", rollback: "true" }',
  ];
  return [
    `project: ${project}`,
    `environment: ${environment}`,
    'services: { api: {}, web: {} }',
    'stages:',
    ...stage('api'),
    ...stage('web', 'api'),
    'validation: { images: false, timeout: 20s, checkTimeout: 2s }',
    'dependencies: { timeout: 20s, checkTimeout: 1s }',
    ...(approval ? ['approval: { required: true }'] : []),
    '',
  ].join('\n');
}

let e2e: E2E;
const started: string[] = [];

interface Answer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers of several shapes
  body: any;
}

async function call(caller: Caller, method: string, url: string, body?: unknown): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (caller !== 'none') headers.authorization = `Bearer ${SECRETS[caller]}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${e2e.stack.url}${url}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

async function saga(id: string) {
  return (await call('viewer', 'GET', `/api/deployments/${id}/saga`)).body;
}

async function deploy(project: string, environment: string, approval: boolean, version = 'v1') {
  const answer = await call('admin', 'POST', '/api/deployments', {
    plan: plan(project, environment, approval),
    version,
  });
  expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  started.push(answer.body.id);
  return answer.body.id as string;
}

/** A deployment of a new project in production that waits for an approval. */
async function waitingDeployment(): Promise<string> {
  const id = await deploy(`p${randomUUID().slice(0, 8)}`, 'production', true);
  await eventually(async () => (await saga(id)).waitingFor, 30_000);
  return id;
}

async function finished(id: string) {
  return eventually(async () => {
    const view = await saga(id);
    return ['SUCCESS', 'FAILURE', 'ROLLED_BACK', 'CANCELLED'].includes(view.status) ? view : undefined;
  }, 30_000);
}

interface RouteCase {
  /** The least role allowed. */
  needs: 'deployer' | 'admin';
  /** The request; for the callers that are allowed, on a target of its own. */
  request(caller: Caller): Promise<{ url: string; body?: unknown }>;
  /** The answer to an allowed caller. */
  allowed: number;
  /** Checks what an allowed caller's request recorded. */
  recorded?(caller: 'deployer' | 'admin', answer: Answer): Promise<void>;
}

let shared: string;
let dlq: FailedEventStore;

async function deadLetter(): Promise<string> {
  const fields = {
    id: randomUUID(),
    type: 'validation:started',
    source: 'materi/orchestrator',
    time: new Date().toISOString(),
    correlation_id: randomUUID(),
    causation_id: '',
    deployment_id: 'roles-dlq',
    priority: 'NORMAL',
    schema: 'materi.events.v1.ValidationStartedEvent',
    content_type: 'application/json',
    data: '{"deploymentId":"roles-dlq"}',
  };
  const recorded = await dlq.record({
    dlqEntryId: '1-0',
    sourceStream: `${e2e.prefix}:validation:started`,
    entryId: `${Date.now()}-${Math.floor(Math.random() * 1000)}`,
    eventId: fields.id,
    eventType: fields.type,
    group: 'roles-test-group',
    consumer: 'roles-test-group:host:1:0',
    attempts: 5,
    error: 'failed on purpose',
    stack: '',
    fields,
    correlationId: fields.correlation_id,
    deploymentId: 'roles-dlq',
    firstFailedAt: new Date(),
    lastFailedAt: new Date(),
  });
  return recorded.id;
}

const answered = async (id: string, caller: 'deployer' | 'admin') => {
  const completed = await eventually(
    async () => (await e2e.events()).find((e) => e.type === 'approval:completed' && e.deploymentId === id),
    30_000,
  );
  expect((completed.data as { by: string }).by).toBe(NAMES[caller]);
};

let lastEnvironmentRollback: string | undefined;

const CASES: Record<string, RouteCase> = {
  'POST /api/deployments': {
    needs: 'deployer',
    allowed: 201,
    async request(caller) {
      return {
        url: '/api/deployments',
        body: {
          plan: plan(`deploy-${caller}-${randomUUID().slice(0, 6)}`, 'production', true),
          version: 'v1',
          triggeredBy: SPOOFED,
        },
      };
    },
    async recorded(caller, answer) {
      started.push(answer.body.id);
      expect(answer.body.triggeredBy).toBe(NAMES[caller]);
      const event = await eventually(
        async () =>
          (await e2e.events()).find(
            (e) => e.type === 'deployment:started' && e.deploymentId === answer.body.id,
          ),
        30_000,
      );
      expect((event.data as { triggeredBy: string }).triggeredBy).toBe(NAMES[caller]);
    },
  },
  'POST /api/deployments/:id/cancel': {
    needs: 'deployer',
    allowed: 202,
    async request(caller) {
      const id = caller === 'deployer' || caller === 'admin' ? await waitingDeployment() : shared;
      return { url: `/api/deployments/${id}/cancel`, body: { by: SPOOFED } };
    },
    async recorded(caller, answer) {
      const view = await finished(answer.body.id);
      expect(view.status).toBe('CANCELLED');
      expect(JSON.stringify(view)).not.toContain(SPOOFED);
      expect(JSON.stringify(view)).toContain(`cancelled by ${NAMES[caller]}`);
    },
  },
  'POST /api/deployments/:id/rollback': {
    needs: 'deployer',
    allowed: 202,
    async request(caller) {
      const id = caller === 'deployer' || caller === 'admin' ? await waitingDeployment() : shared;
      return { url: `/api/deployments/${id}/rollback`, body: { by: SPOOFED } };
    },
    async recorded(_caller, answer) {
      expect(JSON.stringify(await finished(answer.body.id))).not.toContain(SPOOFED);
    },
  },
  'POST /api/deployments/:id/approve': {
    needs: 'deployer',
    allowed: 202,
    async request(caller) {
      const id = caller === 'deployer' || caller === 'admin' ? await waitingDeployment() : shared;
      return { url: `/api/deployments/${id}/approve`, body: { by: SPOOFED, comment: 'ok' } };
    },
    recorded: (caller, answer) => answered(answer.body.id, caller),
  },
  'POST /api/deployments/:id/reject': {
    needs: 'deployer',
    allowed: 202,
    async request(caller) {
      const id = caller === 'deployer' || caller === 'admin' ? await waitingDeployment() : shared;
      return { url: `/api/deployments/${id}/reject`, body: { by: SPOOFED } };
    },
    recorded: (caller, answer) => answered(answer.body.id, caller),
  },
  'POST /api/environments/:project/:environment/rollback': {
    needs: 'deployer',
    allowed: 202,
    async request(caller) {
      // shop/production released v1 then v2 (beforeAll); the allowed callers roll back in turn.
      if (lastEnvironmentRollback) await finished(lastEnvironmentRollback);
      return {
        url: '/api/environments/shop/production/rollback',
        body: { to: caller === 'admin' ? 'v2' : 'v1', by: SPOOFED },
      };
    },
    async recorded(caller, answer) {
      lastEnvironmentRollback = answer.body.id;
      expect(await saga(answer.body.id)).toMatchObject({ kind: 'rollback', triggeredBy: NAMES[caller] });
    },
  },
  'POST /api/dlq/:id/replay': {
    needs: 'admin',
    allowed: 200,
    async request() {
      return { url: `/api/dlq/${await deadLetter()}/replay`, body: {} };
    },
    async recorded(caller, answer) {
      expect(answer.body.replayed.by).toBe(NAMES[caller]);
      expect((await dlq.get(answer.body.replayed.id))?.replayedBy).toBe(NAMES[caller]);
    },
  },
};

/** The status and code each caller gets on a route that needs `needs`. */
function expected(caller: Caller, needs: 'deployer' | 'admin', allowed: number) {
  if (caller === 'none') return { status: 401, code: 'MATERI_ERR_UNAUTHORIZED' };
  if (caller === 'viewer' || caller === 'limited') return { status: 403, code: 'MATERI_ERR_FORBIDDEN' };
  if (caller === 'deployer' && needs === 'admin') return { status: 403, code: 'MATERI_ERR_FORBIDDEN' };
  return { status: allowed, code: undefined };
}

beforeAll(async () => {
  const workdir = path.join(process.env.TMPDIR ?? '/tmp', `materi-roles-${randomUUID()}.yaml`);
  await writeFile(
    workdir,
    [
      'tokens:',
      `  - { name: ${NAMES.viewer}, sha256: ${sha256Hex(SECRETS.viewer)}, role: viewer }`,
      `  - { name: ${NAMES.limited}, sha256: ${sha256Hex(SECRETS.limited)}, role: deployer, environments: [staging] }`,
      `  - { name: ${NAMES.deployer}, sha256: ${sha256Hex(SECRETS.deployer)}, role: deployer }`,
      `  - { name: ${NAMES.admin}, sha256: ${sha256Hex(SECRETS.admin)}, role: admin }`,
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  e2e = await startE2E({ components: COMPONENTS, extraEnv: { MATERI_TOKENS_FILE: workdir } });
  dlq = new FailedEventStore(e2e.stack.store!.db);
  shared = await waitingDeployment();
  for (const version of ['v1', 'v2']) {
    const view = await finished(await deploy('shop', 'production', false, version));
    expect(view.status).toBe('SUCCESS');
  }
}, 120_000);

afterAll(async () => {
  for (const id of started) await call('admin', 'POST', `/api/deployments/${id}/cancel`, {});
  await e2e?.close();
}, 60_000);

describe('every write route, with each role', () => {
  it('has a case for every route that is not read or public', () => {
    const writes = e2e.stack
      .server!.routeAccess.filter((r) => r.access !== 'read' && r.access !== 'public')
      .map((r) => `${r.method} ${r.url}`);
    expect(writes.length).toBeGreaterThan(0);
    expect(writes.sort()).toEqual(Object.keys(CASES).sort());
    for (const [key, routeCase] of Object.entries(CASES)) {
      const route = e2e.stack.server!.routeAccess.find((r) => `${r.method} ${r.url}` === key)!;
      expect(route.access, key).toBe(routeCase.needs === 'admin' ? 'admin' : 'write');
    }
  });

  for (const [key, routeCase] of Object.entries(CASES)) {
    it(`${key}: 401 without a token, 403 for roles below ${routeCase.needs}, the token's name as actor`, async () => {
      const [method] = key.split(' ');
      for (const caller of CALLERS) {
        const { url, body } = await routeCase.request(caller);
        const answer = await call(caller, method!, url, body);
        const want = expected(caller, routeCase.needs, routeCase.allowed);
        expect(
          { caller, status: answer.status, code: answer.body?.error?.code },
          JSON.stringify(answer.body),
        ).toEqual({ caller, status: want.status, code: want.code });
        if (want.status === 403) {
          const name = caller === 'deployer' ? NAMES.deployer : NAMES[caller as 'viewer' | 'limited'];
          expect(answer.body.error.message).toContain(`token "${name}"`);
        }
        if (want.code === undefined && routeCase.recorded)
          await routeCase.recorded(caller as 'deployer' | 'admin', answer);
      }
    }, 120_000);
  }
});

describe('a deployer limited to environments', () => {
  it('deploys to its environment and is refused elsewhere, naming the token, role and environment', async () => {
    const staging = await call('limited', 'POST', '/api/deployments', {
      plan: plan(`limited-${randomUUID().slice(0, 6)}`, 'staging', true),
      version: 'v1',
    });
    expect(staging.status).toBe(201);
    started.push(staging.body.id);
    expect(staging.body.triggeredBy).toBe(NAMES.limited);
    const production = await call('limited', 'POST', '/api/deployments', {
      plan: plan(`limited-${randomUUID().slice(0, 6)}`, 'staging', true),
      version: 'v1',
      environment: 'production',
    });
    expect(production.status).toBe(403);
    expect(production.body.error.message).toBe(
      'token "stan" (deployer for staging) may not act on environment production: it is limited to staging',
    );
  });
});

describe('an approval whose approvers are admin', () => {
  it('is answered by an admin token only', async () => {
    const answer = await call('admin', 'POST', '/api/deployments', {
      plan: plan(`adm-${randomUUID().slice(0, 6)}`, 'production', false).concat(
        'approval: { required: true, approvers: admin }\n',
      ),
      version: 'v1',
    });
    expect(answer.status).toBe(201);
    const id = answer.body.id as string;
    started.push(id);
    await eventually(async () => (await saga(id)).waitingFor, 30_000);
    const deployer = await call('deployer', 'POST', `/api/deployments/${id}/approve`, {});
    expect(deployer.body.error).toEqual({
      code: 'MATERI_ERR_FORBIDDEN',
      message: 'token "dana" (deployer) may not approve an admin approval: that needs an admin token',
    });
    expect((await call('admin', 'POST', `/api/deployments/${id}/approve`, {})).status).toBe(202);
    await answered(id, 'admin');
  });
});

describe('overriding a freeze', () => {
  it('needs an admin token', async () => {
    const body = (project: string) => ({
      plan: plan(project, 'production', true),
      version: 'v1',
      overrideFreeze: true,
      overrideReason: 'hotfix',
    });
    const deployer = await call(
      'deployer',
      'POST',
      '/api/deployments',
      body(`frz-${randomUUID().slice(0, 6)}`),
    );
    expect(deployer.status).toBe(403);
    expect(deployer.body.error).toEqual({
      code: 'MATERI_ERR_FORBIDDEN',
      message: 'token "dana" (deployer) may not override a freeze: that needs an admin token',
    });
    const admin = await call('admin', 'POST', '/api/deployments', body(`frz-${randomUUID().slice(0, 6)}`));
    expect(admin.status).toBe(201);
    started.push(admin.body.id);
  });
});

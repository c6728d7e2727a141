import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BadInputError, MateriError } from '../../../src/errors/index.js';
import {
  loadPlanFile,
  PlanInvalidError,
  type PlanLoadOptions,
  parseDuration,
  parsePlan,
} from '../../../src/orchestrator/plan/index.js';

const MINIMAL = `
project: materi
services:
  api: {}
stages:
  - name: api
    services: [api]
    provider: { type: command, deploy: ./deploy.sh }
`;

/** Two stages and two services; `stageTwo` replaces the second stage's provider line. */
function twoStages(
  stageTwoProvider = '{ type: vercel, token: "${VERCEL_TOKEN}", project: prj_1, deploymentId: dpl_1 }',
) {
  return `project: materi
services:
  api: {}
  web: {}
stages:
  - name: railway
    services: [api]
    provider: { type: command, deploy: ./deploy-api.sh }
  - name: vercel
    services: [web]
    dependsOn: [railway]
    provider: ${stageTwoProvider}
`;
}

function invalid(text: string, options: PlanLoadOptions = {}, source = 'plans/prod.yaml'): PlanInvalidError {
  try {
    parsePlan(text, source, options);
  } catch (error) {
    expect(error).toBeInstanceOf(PlanInvalidError);
    return error as PlanInvalidError;
  }
  throw new Error('the plan was accepted');
}

describe('loading a plan', () => {
  it('applies the documented defaults', () => {
    const plan = parsePlan(MINIMAL, 'minimal.yaml');
    expect(plan).toMatchObject({
      source: 'minimal.yaml',
      project: 'materi',
      environment: 'production',
      strategy: 'rolling',
      validation: { images: true, migrations: [], discovery: [], checkTimeoutMs: 10_000, timeoutMs: 120_000 },
      dependencies: { timeoutMs: 60_000, checkTimeoutMs: 3000, retries: 2, retryDelayMs: 200 },
      health: {
        intervalMs: 1000,
        durationMs: 30_000,
        requestTimeoutMs: 2000,
        thresholds: {
          errorRate: { degraded: 0.05, unhealthy: 0.2 },
          p95: { degraded: 500, unhealthy: 2000 },
        },
        noData: 'fail',
        bakeMs: 0,
        timeoutMs: 300_000,
      },
      rollback: { automatic: true },
    });
    expect(plan.stages[0]).toEqual({
      name: 'api',
      services: ['api'],
      dependsOn: [],
      timeoutMs: 600_000,
      provider: { type: 'command', deploy: './deploy.sh', env: {}, gracePeriodMs: 5000 },
    });
    expect(plan.services.api).toEqual({ name: 'api', dependencies: [] });
    expect(plan.baseDir).toBe(process.cwd());
  });

  it('expands load-time values and --var values, and keeps every other reference', () => {
    const plan = parsePlan(
      `project: materi
environment: staging
services:
  api:
    image: ghcr.io/\${PROJECT}/api:\${VERSION}
    health: https://api.\${ENVIRONMENT}.\${DOMAIN}/health
    dependencies:
      - { name: db, type: postgres, url: '\${DATABASE_URL}' }
stages:
  - name: api
    services: [api]
    provider:
      type: command
      deploy: ./deploy.sh \${VERSION} \${DEPLOYMENT_ID} --region \${REGION} --token \${DEPLOY_TOKEN}
`,
      'p.yaml',
      { version: 'v1.4.2', deploymentId: 'dep-42', vars: { DOMAIN: 'materi.dev', REGION: 'eu-west-1' } },
    );
    expect(plan.services.api!.image).toBe('ghcr.io/materi/api:v1.4.2');
    expect(plan.services.api!.health).toBe('https://api.staging.materi.dev/health');
    expect(plan.services.api!.dependencies[0]).toMatchObject({ url: '${DATABASE_URL}' });
    // In provider settings ${VERSION} is the version each action installs, so it is kept.
    expect(plan.stages[0]!.provider).toMatchObject({
      deploy: './deploy.sh ${VERSION} dep-42 --region eu-west-1 --token ${DEPLOY_TOKEN}',
    });
    expect(plan).toMatchObject({ version: 'v1.4.2', deploymentId: 'dep-42' });
  });

  it('lets --env override the environment and ${ENVIRONMENT}', () => {
    const plan = parsePlan(
      MINIMAL.replace('api: {}', 'api: { health: "https://${ENVIRONMENT}.materi.dev/h" }'),
      'p',
      {
        environment: 'staging',
      },
    );
    expect(plan.environment).toBe('staging');
    expect(plan.services.api!.health).toBe('https://staging.materi.dev/h');
  });

  it('lists the environment variables the plan references, with where, but not built-in names', () => {
    const plan = parsePlan(
      `project: materi
services:
  api:
    dependencies:
      - { name: db, type: postgres, url: '\${DATABASE_URL}' }
  web: {}
stages:
  - name: api
    services: [api]
    provider: { type: local, command: [node, api.js, '\${PORT}', '\${VERSION}'], port: 4701, env: { DB: '\${DATABASE_URL}' } }
  - name: web
    services: [web]
    provider: { type: vercel, token: '\${VERCEL_TOKEN}', project: web, gitSource: { type: github, repoId: 1, ref: '\${VERSION}' } }
validation:
  registry: { auth: { username: '\${REGISTRY_USER}', password: '\${REGISTRY_PASSWORD}' } }
`,
      'p.yaml',
    );
    expect(plan.references).toEqual([
      { name: 'DATABASE_URL', paths: ['services.api.dependencies[0].url', 'stages[0].provider.env.DB'] },
      { name: 'REGISTRY_PASSWORD', paths: ['validation.registry.auth.password'] },
      { name: 'REGISTRY_USER', paths: ['validation.registry.auth.username'] },
      { name: 'VERCEL_TOKEN', paths: ['stages[1].provider.token'] },
    ]);
  });

  it('accepts YAML anchors and merge keys', () => {
    const merged = parsePlan(
      `project: materi
services: { api: {}, web: {} }
stages:
  - { name: api, services: [api], provider: &cmd { type: command, deploy: ./a.sh, gracePeriod: 1s } }
  - { name: web, services: [web], provider: { <<: *cmd, deploy: ./w.sh } }
`,
      'p.yaml',
    );
    expect(merged.stages[1]!.provider).toMatchObject({ deploy: './w.sh', gracePeriodMs: 1000 });
  });

  it('reads a file and resolves relative paths against its directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'materi-plan-'));
    try {
      await writeFile(join(dir, 'plan.yaml'), MINIMAL);
      const plan = await loadPlanFile(join(dir, 'plan.yaml'));
      expect(plan.baseDir).toBe(dir);
      expect(plan.source).toBe(join(dir, 'plan.yaml'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('rejecting a plan', () => {
  it('names the file, the path, the allowed values and the wrong one', () => {
    const error = invalid(twoStages('{ type: heroku, app: web }'));
    expect(error.message).toBe(
      'plans/prod.yaml: stages[1].provider.type: expected one of command|http|vercel|railway|local, got "heroku"',
    );
    expect(error.code).toBe('MATERI_ERR_PLAN_INVALID');
    expect(error.exitCode).toBe(2);
    expect(error).toBeInstanceOf(MateriError);
    expect(error.issues).toEqual([
      {
        path: 'stages[1].provider.type',
        message: 'expected one of command|http|vercel|railway|local, got "heroku"',
        line: 12,
      },
    ]);
  });

  it('rejects unknown keys at every level', () => {
    expect(invalid(`${MINIMAL}stage: []\n`).message).toBe('plans/prod.yaml: stage: unknown key');
    expect(invalid(MINIMAL.replace('deploy: ./deploy.sh', 'deploy: ./deploy.sh, timeout: 5m')).message).toBe(
      'plans/prod.yaml: stages[0].provider.timeout: unknown key',
    );
    expect(invalid(MINIMAL.replace('api: {}', 'api: { imgae: x }')).message).toBe(
      'plans/prod.yaml: services.api.imgae: unknown key',
    );
  });

  it('names the line of a YAML syntax error', () => {
    const error = invalid('project: materi\nservices:\n  api: { image: x\nstages: []\n');
    expect(error.message).toMatch(/^plans\/prod\.yaml: line \d+, column \d+: /);
    expect(error.issues[0]!.line).toBeGreaterThanOrEqual(3);
    expect(invalid('project: a\nproject: b\n').message).toBe(
      'plans/prod.yaml: line 2, column 1: Map keys must be unique',
    );
  });

  it('rejects a document that is not a mapping', () => {
    expect(invalid('- a\n- b\n').message).toBe(
      'plans/prod.yaml: expected a mapping (project, services, stages, ...)',
    );
  });

  it('reports missing required keys and wrong types', () => {
    expect(
      invalid('services: { api: {} }\nstages: []\n').issues.map((i) => `${i.path}: ${i.message}`),
    ).toEqual(['project: is required', 'stages: must list at least one stage']);
    expect(invalid(MINIMAL.replace('services: [api]', 'services: api')).message).toBe(
      'plans/prod.yaml: stages[0].services: expected a list, got "api"',
    );
  });

  it('counts the other problems in the message and lists them all in file order', () => {
    const error = invalid(`project: Materi
strategy: big-bang
services: { api: {} }
stages:
  - { name: api, services: [api], provider: { type: command, deploy: x }, timeout: 5 minutes }
`);
    expect(error.message).toBe(
      'plans/prod.yaml: project: must match [a-z0-9][a-z0-9-]*, got "Materi" (and 2 more problems)',
    );
    expect(error.issues.map((i) => [i.line, i.path])).toEqual([
      [1, 'project'],
      [2, 'strategy'],
      [5, 'stages[0].timeout'],
    ]);
    expect(error.issues[1]!.message).toBe(
      'expected one of rolling|blue-green|canary|recreate, got "big-bang"',
    );
    expect(error.issues[2]!.message).toBe(
      'invalid duration "5 minutes" (use 500ms, 30s, 5m, 1h or a number of milliseconds)',
    );
  });

  it('rejects stage names that cannot be stream keys, and duplicates', () => {
    expect(invalid(MINIMAL.replace('name: api', 'name: API:v2')).message).toBe(
      'plans/prod.yaml: stages[0].name: must match [a-z0-9][a-z0-9_-]* (at most 63 characters), got "API:v2"',
    );
    expect(invalid(twoStages().replace('name: vercel', 'name: railway')).message).toBe(
      'plans/prod.yaml: stages[1].name: duplicate stage name "railway" (also stages[0])',
    );
  });

  it('rejects a dependency on an unknown stage', () => {
    expect(invalid(twoStages().replace('dependsOn: [railway]', 'dependsOn: [railwy]')).message).toBe(
      'plans/prod.yaml: stages[1].dependsOn[0]: unknown stage "railwy" (stages: railway, vercel)',
    );
  });

  it('names the cycle in the stage graph', () => {
    const text = twoStages().replace(
      '    services: [api]\n    provider: { type: command',
      '    services: [api]\n    dependsOn: [vercel]\n    provider: { type: command',
    );
    expect(invalid(text).message).toBe('plans/prod.yaml: stages: cycle railway -> vercel -> railway');
    expect(invalid(MINIMAL.replace('services: [api]', 'services: [api]\n    dependsOn: [api]')).message).toBe(
      'plans/prod.yaml: stages: cycle api -> api',
    );
  });

  it('requires stage services to be declared and every service to be deployed', () => {
    expect(invalid(MINIMAL.replace('services: [api]', 'services: [api, wrker]')).message).toBe(
      'plans/prod.yaml: stages[0].services[1]: unknown service "wrker" (declared: api)',
    );
    expect(invalid(MINIMAL.replace('api: {}', 'api: {}\n  cache: {}')).message).toBe(
      'plans/prod.yaml: services.cache: not deployed by any stage',
    );
  });

  it('checks that related settings agree', () => {
    expect(invalid(`${MINIMAL}health: { duration: 1m, timeout: 30s }\n`).message).toBe(
      'plans/prod.yaml: health.timeout: (30s) must be longer than health.duration (1m)',
    );
    expect(
      invalid(`${MINIMAL}health: { thresholds: { errorRate: { degraded: 0.5, unhealthy: 0.2 } } }\n`).message,
    ).toBe(
      'plans/prod.yaml: health.thresholds.errorRate.degraded: (0.5) must not exceed errorRate.unhealthy (0.2)',
    );
    expect(invalid(twoStages('{ type: vercel, token: t, project: p }')).message).toBe(
      'plans/prod.yaml: stages[1].provider: set exactly one of gitSource or deploymentId',
    );
  });

  it('checks provider settings against the stage', () => {
    const railway = twoStages(
      '{ type: railway, token: t, environmentId: e, services: { api: { serviceId: s } } }',
    );
    expect(invalid(railway).issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      'stages[1].provider.services: missing the Railway service of "web"',
      'stages[1].provider.services.api: not a service of this stage (services: web)',
    ]);
    const local = `project: demo
services: { a: {}, b: {} }
stages:
  - { name: a, services: [a], provider: { type: local, command: [node, a.js], port: 4701 } }
  - { name: b, services: [b], provider: { type: local, command: [node, b.js], port: 4701 } }
`;
    const hook = twoStages(
      '{ type: http, deploy: { url: "https://h/deploy" }, poll: { url: "https://h/jobs/${HOOK_ID}", field: s, success: [ok] } }',
    );
    expect(invalid(hook).message).toBe(
      'plans/prod.yaml: stages[1].provider.poll: uses ${HOOK_ID} but deploy.idField is not set',
    );
    expect(invalid(local).message).toBe(
      'plans/prod.yaml: stages[1].provider.port: port 4701 is also used by stage "a"',
    );
  });

  it('never echoes a value that failed a URL check', () => {
    const error = invalid(
      MINIMAL.replace(
        'api: {}',
        "api: { dependencies: [{ name: cache, type: redis, url: 'postgres://app:hunter2-secret@db/app' }] }",
      ),
    );
    expect(error.message).toBe(
      'plans/prod.yaml: services.api.dependencies[0].url: must be a redis:// or rediss:// URL',
    );
    expect(JSON.stringify(error.issues)).not.toContain('hunter2');
  });

  it('rejects bad options with BadInputError', () => {
    expect(() => parsePlan(MINIMAL, 'p', { version: 'v1; rm -rf /' })).toThrow(BadInputError);
    expect(() => parsePlan(MINIMAL, 'p', { vars: { VERSION: 'x' } })).toThrow(
      '--var VERSION: VERSION is set by materi and cannot be given as a --var',
    );
    expect(() => parsePlan(MINIMAL, 'p', { vars: { 'bad-name': 'x' } })).toThrow(
      '--var "bad-name": the name must match [A-Za-z_][A-Za-z0-9_]*',
    );
  });

  it('names a plan file that cannot be read', async () => {
    await expect(loadPlanFile('plans/does-not-exist.yaml')).rejects.toThrow(
      /^plans\/does-not-exist\.yaml: cannot read the plan: ENOENT/,
    );
  });
});

describe('durations', () => {
  it.each([
    [1500, 1500],
    ['1500', 1500],
    ['500ms', 500],
    ['30s', 30_000],
    ['1.5s', 1500],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['0s', 0],
  ])('parses %j as %d ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each(['5 minutes', '-1s', '1d', '', 'fast', 1.5, -3])('rejects %j naming it', (input) => {
    expect(() => parseDuration(input)).toThrow(`invalid duration ${JSON.stringify(input)}`);
  });

  it('rejects durations longer than an int32 of milliseconds', () => {
    expect(() => parseDuration('600h')).toThrow('duration "600h" is longer than 24 days');
  });
});

import { fromJson, type JsonValue } from '@bufbuild/protobuf';
import { StructSchema } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import {
  buildDependencySpec,
  buildHealthSpec,
  buildValidationSpec,
  parsePlan,
} from '../../../src/orchestrator/plan/index.js';

const PLAN = `
project: materi
services:
  api:
    image: ghcr.io/materi/api:\${VERSION}
    health: http://127.0.0.1:4701/health
    ready: http://127.0.0.1:4701/ready
    metrics: http://127.0.0.1:4701/metrics
    promql:
      url: http://127.0.0.1:9090
      query: sum(rate(http_requests_total[1m]))
      condition: { op: '>', value: 0 }
    env:
      required: [DATABASE_URL, REDIS_URL]
    dependencies:
      - { name: postgres-main, type: postgres, url: '\${DATABASE_URL}' }
      - { name: cache, type: redis, url: '\${REDIS_URL}', critical: false, timeout: 1s, retries: 5 }
      - name: billing
        type: http
        url: https://billing.internal/health
        expectStatus: [200]
        bodyContains: ok
        bodyMatches: '^\\{.*\\}$'
  web:
    image: ghcr.io/materi/web:\${VERSION}
    health: http://127.0.0.1:4703/health
    metrics: { url: http://127.0.0.1:4703/metrics, series: [http_requests_total], increasing: [http_requests_total] }
    env:
      source: { type: vercel, projectId: prj_x, teamId: team_y, token: '\${VERCEL_TOKEN}' }
      required: [API_URL]
    dependencies:
      - { name: smtp, type: tcp, host: mail.internal, port: 25 }
  worker:
    image: ghcr.io/materi/worker:\${VERSION}
    env:
      source: { type: dotenv, path: /srv/worker/.env }
      required: [QUEUE_URL]
stages:
  - { name: railway, services: [api, worker], provider: { type: command, deploy: x } }
  - { name: vercel, services: [web], dependsOn: [railway], provider: { type: command, deploy: x } }
validation:
  registry:
    auth: { username: '\${REGISTRY_USER}', password: '\${REGISTRY_PASSWORD}' }
  migrations:
    - { name: main-db, tool: knex, url: '\${DATABASE_URL}', expectedLatest: 20260101_add_users.js }
    - { name: reports, tool: custom, url: 'mysql://root@127.0.0.1:3306/test', query: 'SELECT name, applied FROM m', blocking: false }
  discovery:
    - { name: api-internal, host: api.internal, port: 8080, srv: _http._tcp.api.internal }
  checkTimeout: 4s
dependencies: { checkTimeout: 3s, retries: 2, retryDelay: 200ms }
health:
  interval: 1s
  duration: 30s
  requestTimeout: 2s
  thresholds:
    errorRate: { degraded: 0.05, unhealthy: 0.2 }
    p95: { degraded: 500ms, unhealthy: 2s }
  noData: inconclusive
  bake: 2m
`;

const plan = parsePlan(PLAN, 'specs.yaml', { version: 'v1.4.2' });

describe('worker specs', () => {
  it('builds the validator spec from images, migrations, env sources and discovery', () => {
    expect(buildValidationSpec(plan, 'v1.4.2')).toEqual({
      timeoutMs: 4000,
      images: ['api', 'web', 'worker'].map((service) => ({
        service,
        image: `ghcr.io/materi/${service}:v1.4.2`,
        auth: { username: '${REGISTRY_USER}', password: '${REGISTRY_PASSWORD}' },
        insecure: false,
      })),
      migrations: [
        {
          name: 'main-db',
          tool: 'knex',
          url: '${DATABASE_URL}',
          expectedLatest: '20260101_add_users.js',
          blocking: true,
        },
        {
          name: 'reports',
          tool: 'custom',
          url: 'mysql://root@127.0.0.1:3306/test',
          query: 'SELECT name, applied FROM m',
          blocking: false,
        },
      ],
      env: [
        { service: 'api', source: { type: 'process' }, required: ['DATABASE_URL', 'REDIS_URL'] },
        {
          service: 'web',
          source: {
            type: 'vercel',
            projectId: 'prj_x',
            teamId: 'team_y',
            token: '${VERCEL_TOKEN}',
            baseUrl: 'https://api.vercel.com',
            target: 'production',
          },
          required: ['API_URL'],
        },
        { service: 'worker', source: { type: 'dotenv', path: '/srv/worker/.env' }, required: ['QUEUE_URL'] },
      ],
      discovery: [{ name: 'api-internal', host: 'api.internal', port: 8080, srv: '_http._tcp.api.internal' }],
    });
  });

  it('fills ${VERSION} from the argument when the plan was loaded without a version', () => {
    const unversioned = parsePlan(PLAN, 'specs.yaml');
    expect(unversioned.services.api!.image).toBe('ghcr.io/materi/api:${VERSION}');
    expect(buildValidationSpec(unversioned, 'v9.9.9').images[0]!.image).toBe('ghcr.io/materi/api:v9.9.9');
  });

  it('leaves images out when image checks are off', () => {
    const noImages = parsePlan(PLAN.replace('validation:\n', 'validation:\n  images: false\n'), 'specs.yaml');
    expect(buildValidationSpec(noImages, 'v1').images).toEqual([]);
  });

  it('flattens every service dependency with its service for the dependency checker', () => {
    expect(buildDependencySpec(plan)).toEqual({
      timeoutMs: 3000,
      retries: 2,
      retryDelayMs: 200,
      dependencies: [
        { name: 'postgres-main', service: 'api', type: 'postgres', critical: true, url: '${DATABASE_URL}' },
        {
          name: 'cache',
          service: 'api',
          type: 'redis',
          critical: false,
          url: '${REDIS_URL}',
          timeoutMs: 1000,
          retries: 5,
        },
        {
          name: 'billing',
          service: 'api',
          type: 'http',
          critical: true,
          url: 'https://billing.internal/health',
          method: 'GET',
          expectStatus: [200],
          bodyContains: 'ok',
          bodyMatches: '^\\{.*\\}$',
        },
        { name: 'smtp', service: 'web', type: 'tcp', critical: true, host: 'mail.internal', port: 25 },
      ],
    });
  });

  it('builds the health monitor spec for the services that have a health URL', () => {
    const spec = buildHealthSpec(plan);
    expect(spec).toEqual({
      intervalMs: 1000,
      durationMs: 30_000,
      requestTimeoutMs: 2000,
      thresholds: {
        errorRate: { degraded: 0.05, unhealthy: 0.2 },
        p95Ms: { degraded: 500, unhealthy: 2000 },
      },
      noData: 'inconclusive',
      services: [
        {
          name: 'api',
          health: 'http://127.0.0.1:4701/health',
          ready: 'http://127.0.0.1:4701/ready',
          metrics: { url: 'http://127.0.0.1:4701/metrics' },
          promql: {
            url: 'http://127.0.0.1:9090',
            query: 'sum(rate(http_requests_total[1m]))',
            condition: { op: '>', value: 0 },
          },
        },
        {
          name: 'web',
          health: 'http://127.0.0.1:4703/health',
          metrics: {
            url: 'http://127.0.0.1:4703/metrics',
            series: ['http_requests_total'],
            increasing: ['http_requests_total'],
          },
        },
      ],
    });
    expect(buildHealthSpec(plan, { purpose: 'bake', services: ['web'] })).toMatchObject({
      durationMs: 120_000,
      services: [{ name: 'web' }],
    });
  });

  it('keeps secrets as references even when the orchestrator has their values', () => {
    const previous = process.env.DATABASE_URL;
    process.env.DATABASE_URL = 'postgres://app:s3cret-password@db/app';
    try {
      const text = JSON.stringify([
        buildValidationSpec(plan),
        buildDependencySpec(plan),
        buildHealthSpec(plan),
      ]);
      expect(text).toContain('${DATABASE_URL}');
      expect(text).not.toContain('s3cret-password');
    } finally {
      if (previous === undefined) delete process.env.DATABASE_URL;
      else process.env.DATABASE_URL = previous;
    }
  });

  it('produces plain JSON that fits a google.protobuf.Struct', () => {
    for (const spec of [buildValidationSpec(plan), buildDependencySpec(plan), buildHealthSpec(plan)]) {
      expect(JSON.parse(JSON.stringify(spec))).toEqual(spec);
      expect(() => fromJson(StructSchema, spec as unknown as JsonValue)).not.toThrow();
    }
  });
});

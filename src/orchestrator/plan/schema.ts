import { z } from 'zod';
import { freezeListSchema } from '../freeze.js';
import { providerSettingsSchema } from '../providers/settings.js';
import { durationSchema } from './duration.js';
import { envName, headers, holdsReference, port, text, urlField } from './fields.js';

/**
 * The schema of a plan file (docs/plan.md is its reference). Every object is strict: an unknown
 * key is an error, so a typo never silently disables a check. Durations come out in milliseconds
 * under a `…Ms` name.
 *
 * @module
 */

/** Names of services, dependencies and checks; they appear in check names and stream keys. */
const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const name = () => z.string().regex(NAME, 'must match [a-z0-9][a-z0-9_-]* (at most 63 characters)');

/** Names of `${NAME}` vars (`--var` and the plan's `vars`). */
export const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const STRATEGIES = ['rolling', 'blue-green', 'canary', 'recreate'] as const;
export const MIGRATION_TOOLS = ['knex', 'node-pg-migrate', 'prisma', 'flyway', 'custom'] as const;
export const NO_DATA_POLICIES = ['fail', 'pass', 'inconclusive'] as const;
/** What a DEGRADED or INCONCLUSIVE health verdict does: wait for a person, fail, or warn and go on. */
export const INCONCLUSIVE_POLICIES = ['pause', 'fail', 'succeed'] as const;
/** Roles a token can have (viewer < deployer < admin); `approval.approvers` names one. */
/** Who may answer an approval: a deployer (or admin) token, or an admin token only. */
export const APPROVER_ROLES = ['deployer', 'admin'] as const;
const COMPARISONS = ['>', '>=', '<', '<=', '==', '!='] as const;

const envSource = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('process') }),
  z.strictObject({ type: z.literal('dotenv'), path: text() }),
  z.strictObject({
    type: z.literal('vercel'),
    projectId: text(),
    teamId: text().optional(),
    token: text(),
    baseUrl: urlField(['http', 'https']).default('https://api.vercel.com'),
    target: text().default('production'),
  }),
  z.strictObject({
    type: z.literal('railway'),
    projectId: text(),
    environmentId: text(),
    serviceId: text(),
    token: text(),
    baseUrl: urlField(['http', 'https']).default('https://backboard.railway.com/graphql/v2'),
  }),
]);

const regex = () =>
  z.string().refine(
    (pattern) => {
      try {
        new RegExp(pattern);
        return true;
      } catch {
        return false;
      }
    },
    { message: 'must be a valid regular expression' },
  );

/** Settings every dependency kind shares; `timeout`/`retries` override the gate's. */
const dependencyCommon = {
  name: name(),
  /** An unhealthy critical dependency fails the deployment. @defaultValue true */
  critical: z.boolean().default(true),
  timeout: durationSchema().optional(),
  retries: z.number().int().min(0).max(20).optional(),
};

const withTimeoutMs = <T extends { timeout?: number }>({ timeout, ...rest }: T) => ({
  ...(rest as Omit<T, 'timeout'>),
  ...(timeout === undefined ? {} : { timeoutMs: timeout }),
});

const dependency = z.discriminatedUnion('type', [
  z
    .strictObject({
      ...dependencyCommon,
      type: z.literal('postgres'),
      url: urlField(['postgres', 'postgresql']),
    })
    .transform(withTimeoutMs),
  z
    .strictObject({ ...dependencyCommon, type: z.literal('mysql'), url: urlField(['mysql']) })
    .transform(withTimeoutMs),
  z
    .strictObject({ ...dependencyCommon, type: z.literal('redis'), url: urlField(['redis', 'rediss']) })
    .transform(withTimeoutMs),
  z
    .strictObject({
      ...dependencyCommon,
      type: z.literal('http'),
      url: urlField(['http', 'https']),
      method: z.enum(['GET', 'HEAD', 'POST']).default('GET'),
      expectStatus: z.array(z.number().int().min(100).max(599)).min(1).optional(),
      bodyContains: z.string().optional(),
      bodyMatches: regex().optional(),
      headers: headers().optional(),
    })
    .transform(withTimeoutMs),
  z
    .strictObject({ ...dependencyCommon, type: z.literal('tcp'), host: text(), port: port() })
    .transform(withTimeoutMs),
]);

const metrics = z.union([
  urlField(['http', 'https']).transform((url) => ({ url })),
  z.strictObject({
    url: urlField(['http', 'https']),
    /** Series that must be present. */
    series: z.array(text()).optional(),
    /** Counters that must increase during the health window. */
    increasing: z.array(text()).optional(),
  }),
]);

const service = z.strictObject({
  description: z.string().optional(),
  /** Container image; checked by the validator when `validation.images` is on. */
  image: text().optional(),
  /** Health endpoint probed by the health gate; services without one are not probed. */
  health: urlField(['http', 'https']).optional(),
  ready: urlField(['http', 'https']).optional(),
  metrics: metrics.optional(),
  promql: z
    .strictObject({
      url: urlField(['http', 'https']),
      query: text(),
      condition: z.strictObject({ op: z.enum(COMPARISONS), value: z.number() }),
    })
    .optional(),
  /** Environment variables the service needs, checked by the validator. */
  env: z
    .strictObject({
      source: envSource.prefault({ type: 'process' }),
      required: z.array(envName()).default([]),
    })
    .optional(),
  dependencies: z.array(dependency).default([]),
});

/** A person must approve before the deployment goes on (the environment, or one stage). */
const approval = z
  .strictObject({
    /** @defaultValue true */
    required: z.boolean().default(true),
    /** Role allowed to answer. @defaultValue deployer */
    approvers: z.enum(APPROVER_ROLES).default('deployer'),
    /** Nobody answered this long: the deployment fails. @defaultValue 1h */
    timeout: durationSchema().default(3_600_000),
  })
  .transform(({ timeout, ...rest }) => ({ ...rest, timeoutMs: timeout }));

const stage = z
  .strictObject({
    name: z.string(),
    description: z.string().optional(),
    services: z.array(z.string()).min(1, 'must list at least one service'),
    dependsOn: z.array(z.string()).default([]),
    provider: providerSettingsSchema,
    /** Deadline of one deploy or rollback of this stage. @defaultValue 10m */
    timeout: durationSchema().default(600_000),
    /** Wait for a person's approval before this stage runs. */
    approval: approval.optional(),
  })
  .transform(({ timeout, ...rest }) => ({ ...rest, timeoutMs: timeout }));

const migration = z
  .strictObject({
    name: name(),
    tool: z.enum(MIGRATION_TOOLS),
    url: urlField(['postgres', 'postgresql', 'mysql']),
    /** The migration that must be the latest applied one. */
    expectedLatest: text().optional(),
    /** Table holding applied migrations. @defaultValue the tool's own */
    table: text().optional(),
    /** For `tool: custom`: SQL returning rows (name, applied, failed?). */
    query: text().optional(),
    /** A failing non-blocking check gives a warning instead of failing the gate. @defaultValue true */
    blocking: z.boolean().default(true),
  })
  .superRefine((m, ctx) => {
    if (m.tool === 'custom' && m.query === undefined)
      ctx.addIssue({ code: 'custom', path: ['query'], message: 'is required when tool is custom' });
    if (m.tool !== 'custom' && m.query !== undefined)
      ctx.addIssue({ code: 'custom', path: ['query'], message: 'is only allowed when tool is custom' });
    if (m.url.startsWith('mysql') && !holdsReference(m.url) && m.tool === 'node-pg-migrate')
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'node-pg-migrate needs a postgres:// URL' });
  });

const validation = z
  .strictObject({
    /** Check that every service image exists in its registry. @defaultValue true */
    images: z.boolean().default(true),
    registry: z
      .strictObject({
        auth: z.strictObject({ username: text(), password: text() }).optional(),
        /** Plain HTTP registry. @defaultValue false */
        insecure: z.boolean().default(false),
      })
      .optional(),
    migrations: z.array(migration).default([]),
    discovery: z
      .array(
        z
          .strictObject({ name: name(), host: text(), port: port().optional(), srv: text().optional() })
          .refine((d) => d.port !== undefined || d.srv !== undefined, { message: 'needs port or srv' }),
      )
      .default([]),
    /** Timeout of each check. @defaultValue 10s */
    checkTimeout: durationSchema().default(10_000),
    /** The orchestrator's deadline for the whole gate. @defaultValue 2m */
    timeout: durationSchema().default(120_000),
  })
  .transform(({ checkTimeout, timeout, ...rest }) => ({
    ...rest,
    checkTimeoutMs: checkTimeout,
    timeoutMs: timeout,
  }));

const dependencyGate = z
  .strictObject({
    /** The orchestrator's deadline for the whole gate. @defaultValue 1m */
    timeout: durationSchema().default(60_000),
    /** Timeout of each attempt. @defaultValue 3s */
    checkTimeout: durationSchema().default(3000),
    /** @defaultValue 2 */
    retries: z.number().int().min(0).max(20).default(2),
    /** @defaultValue 200ms */
    retryDelay: durationSchema().default(200),
  })
  .transform(({ timeout, checkTimeout, retryDelay, ...rest }) => ({
    ...rest,
    timeoutMs: timeout,
    checkTimeoutMs: checkTimeout,
    retryDelayMs: retryDelay,
  }));

const ratio = () => z.number().min(0).max(1);

const health = z
  .strictObject({
    /** Time between probes. @defaultValue 1s */
    interval: durationSchema().default(1000),
    /** Length of the post-deploy health window. @defaultValue 30s */
    duration: durationSchema().default(30_000),
    /** Timeout of one probe. @defaultValue 2s */
    requestTimeout: durationSchema().default(2000),
    thresholds: z
      .strictObject({
        errorRate: z
          .strictObject({ degraded: ratio().default(0.05), unhealthy: ratio().default(0.2) })
          .prefault({}),
        p95: z
          .strictObject({
            degraded: durationSchema().default(500),
            unhealthy: durationSchema().default(2000),
          })
          .prefault({}),
      })
      .prefault({}),
    /** Verdict when no probe answered. @defaultValue fail */
    noData: z.enum(NO_DATA_POLICIES).default('fail'),
    /** Watch this long after success; unhealthy → rollback. @defaultValue 0 (no bake) */
    bake: durationSchema().default(0),
    /** The orchestrator's deadline for one health gate. @defaultValue 5m */
    timeout: durationSchema().default(300_000),
    /**
     * A DEGRADED or INCONCLUSIVE verdict of the health gate: `pause` waits for a person (gate
     * `health`), `fail` fails the gate, `succeed` warns and goes on. @defaultValue pause
     */
    onInconclusive: z.enum(INCONCLUSIVE_POLICIES).default('pause'),
  })
  .transform(({ interval, duration, requestTimeout, bake, timeout, ...rest }) => ({
    ...rest,
    intervalMs: interval,
    durationMs: duration,
    requestTimeoutMs: requestTimeout,
    bakeMs: bake,
    timeoutMs: timeout,
  }));

/** The schema of a whole plan, after load-time expansion. */
export const planSchema = z.strictObject({
  project: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must match [a-z0-9][a-z0-9-]*'),
  description: z.string().optional(),
  /** Default environment; `--env` overrides. @defaultValue production */
  environment: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'must match [A-Za-z0-9][A-Za-z0-9._-]*')
    .default('production'),
  strategy: z.enum(STRATEGIES).default('rolling'),
  /** Default values of `${NAME}` vars; `--var NAME=value` overrides them. Used at load time only. */
  vars: z
    .record(
      z.string().regex(VAR_NAME),
      z.union([z.string(), z.number()], { error: 'must be a string or a number' }),
      {
        error: (issue) =>
          issue.code === 'invalid_key' ? 'a var name must match [A-Za-z_][A-Za-z0-9_]*' : undefined,
      },
    )
    .optional(),
  services: z
    .record(z.string(), service)
    .refine((services) => Object.keys(services).length > 0, { message: 'must declare at least one service' }),
  stages: z.array(stage).min(1, 'must list at least one stage'),
  validation: validation.prefault({}),
  dependencies: dependencyGate.prefault({}),
  health: health.prefault({}),
  /** Wait for a person's approval before the first stage (for the environment). */
  approval: approval.optional(),
  /**
   * Times when the plan's environments take no deployment without `--override-freeze --reason`:
   * weekly windows in a time zone, or one-off ranges (see src/orchestrator/freeze.ts).
   */
  freeze: freezeListSchema.default([]),
  rollback: z
    .strictObject({
      /** Roll back by itself when a stage or the health gate fails. @defaultValue true */
      automatic: z.boolean().default(true),
    })
    .prefault({}),
});

/** Service names follow the same alphabet as stage names. */
export const SERVICE_NAME_PATTERN = NAME;

export type ParsedPlan = z.output<typeof planSchema>;

import { z } from 'zod';
import { durationSchema } from '../plan/duration.js';
import { environment, headers, port, text, urlField } from '../plan/fields.js';

/**
 * The settings of each provider, as written under `stages[].provider` in a plan. Every object is
 * strict (an unknown key is an error) and durations come out in milliseconds (`…Ms`).
 *
 * Strings may hold `${NAME}` references; they are resolved by the provider at the moment of use
 * from the orchestrator's environment. In provider settings `${VERSION}` means the version the
 * action installs: the new version on deploy, the previous version on rollback.
 *
 * @module
 */

export const PROVIDER_TYPES = ['command', 'http', 'vercel', 'railway', 'local'] as const;
export type ProviderType = (typeof PROVIDER_TYPES)[number];

const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

const commandSettings = z
  .strictObject({
    type: z.literal('command'),
    /** Shell command (`/bin/sh -c`) that deploys. */
    deploy: text(),
    /** Shell command that restores the previous version. @defaultValue the deploy command, run with the previous version */
    rollback: text().optional(),
    /** Working directory, relative to the plan file's directory. */
    cwd: text().optional(),
    /** Extra environment variables for the command. */
    env: environment().default({}),
    /** Time between SIGTERM and SIGKILL when the command is stopped. @defaultValue 5s */
    gracePeriod: durationSchema().default(5000),
  })
  .transform(({ gracePeriod, ...rest }) => ({ ...rest, gracePeriodMs: gracePeriod }));

const jsonBody = z.union([z.string(), z.record(z.string(), z.unknown()), z.array(z.unknown())]);

const httpRequestShape = {
  method: z.enum(HTTP_METHODS).default('POST'),
  url: urlField(['http', 'https']),
  headers: headers().default({}),
  /** A string is sent as is; an object or array is sent as JSON. */
  body: jsonBody.optional(),
  /** Statuses that count as accepted. @defaultValue any 2xx */
  expectStatus: z.array(z.number().int().min(100).max(599)).min(1).optional(),
  /** Dot path of an id in the JSON response, available to `poll` as `${HOOK_ID}`. */
  idField: text().optional(),
};

const httpRequest = z.strictObject(httpRequestShape);

const httpPoll = z
  .strictObject({
    method: z.enum(HTTP_METHODS).default('GET'),
    url: urlField(['http', 'https']),
    headers: headers().default({}),
    /** Time between polls. @defaultValue 5s */
    interval: durationSchema().default(5000),
    /** Dot path of the status in the JSON response, e.g. `status` or `deployment.state`. */
    field: text(),
    success: z.array(z.union([z.string(), z.number(), z.boolean()]).transform(String)).min(1),
    failure: z.array(z.union([z.string(), z.number(), z.boolean()]).transform(String)).default([]),
    /** Dot path of a URL in the final response, recorded as the `url` artifact. */
    urlField: text().optional(),
  })
  .transform(({ interval, ...rest }) => ({ ...rest, intervalMs: interval }));

const httpSettings = z
  .strictObject({
    type: z.literal('http'),
    deploy: httpRequest,
    /** Poll a status URL after the deploy hook until a success or failure value. */
    poll: httpPoll.optional(),
    /** Rollback hook; without it, rollback sends the deploy hook again with the previous version. */
    rollback: z.strictObject({ ...httpRequestShape, poll: httpPoll.optional() }).optional(),
    /** Timeout of each HTTP request. @defaultValue 30s */
    requestTimeout: durationSchema().default(30_000),
  })
  .transform(({ requestTimeout, ...rest }) => ({ ...rest, requestTimeoutMs: requestTimeout }));

const gitSource = z.strictObject({
  type: z.enum(['github', 'gitlab', 'bitbucket']),
  ref: text(),
  sha: text().optional(),
  repoId: z.union([z.string(), z.number()]).optional(),
  org: text().optional(),
  repo: text().optional(),
  projectId: z.union([z.string(), z.number()]).optional(),
  owner: text().optional(),
  slug: text().optional(),
  workspaceUuid: text().optional(),
  repoUuid: text().optional(),
});

const vercelSettings = z
  .strictObject({
    type: z.literal('vercel'),
    /** API token, normally `${VERCEL_TOKEN}`. */
    token: text(),
    /** Project id (`prj_…`) or name. */
    project: text(),
    /** Deployment name. @defaultValue the project */
    name: text().optional(),
    teamId: text().optional(),
    /** @defaultValue production */
    target: text().default('production'),
    /** Build from this git reference (e.g. `ref: ${VERSION}`). */
    gitSource: gitSource.optional(),
    /** Redeploy this existing deployment instead of building. */
    deploymentId: text().optional(),
    /** Promote the deployment to production once READY (for a staged, non-production target). */
    promote: z.boolean().default(false),
    /** @defaultValue https://api.vercel.com */
    baseUrl: urlField(['http', 'https']).default('https://api.vercel.com'),
    /** Time between status polls. @defaultValue 5s */
    pollInterval: durationSchema().default(5000),
    /** Timeout of each HTTP request. @defaultValue 30s */
    requestTimeout: durationSchema().default(30_000),
    /** How many recent production deployments to search for the rollback target. @defaultValue 20 */
    historyLimit: z.number().int().min(1).max(100).default(20),
  })
  .superRefine((settings, ctx) => {
    if ((settings.gitSource === undefined) === (settings.deploymentId === undefined))
      ctx.addIssue({ code: 'custom', message: 'set exactly one of gitSource or deploymentId', path: [] });
  })
  .transform(({ pollInterval, requestTimeout, ...rest }) => ({
    ...rest,
    pollIntervalMs: pollInterval,
    requestTimeoutMs: requestTimeout,
  }));

const railwaySettings = z
  .strictObject({
    type: z.literal('railway'),
    /** API token, normally `${RAILWAY_TOKEN}`. */
    token: text(),
    /** `account` (also team and workspace tokens): `Authorization: Bearer`; `project`: `Project-Access-Token`. */
    tokenType: z.enum(['account', 'project']).default('account'),
    projectId: text().optional(),
    environmentId: text(),
    /** The Railway service of each plan service the stage deploys. */
    services: z.record(
      z.string(),
      z.strictObject({
        serviceId: text(),
        /** Image to deploy (set with serviceInstanceUpdate before deploying), e.g. `ghcr.io/acme/api:${VERSION}`. */
        image: text().optional(),
      }),
    ),
    /** `deploy`: serviceInstanceDeploy; `redeploy`: serviceInstanceRedeploy. @defaultValue deploy */
    trigger: z.enum(['deploy', 'redeploy']).default('deploy'),
    /** @defaultValue https://backboard.railway.com/graphql/v2 */
    baseUrl: urlField(['http', 'https']).default('https://backboard.railway.com/graphql/v2'),
    pollInterval: durationSchema().default(5000),
    requestTimeout: durationSchema().default(30_000),
    /** How many recent deployments to search for the rollback target. @defaultValue 20 */
    historyLimit: z.number().int().min(2).max(100).default(20),
  })
  .transform(({ pollInterval, requestTimeout, ...rest }) => ({
    ...rest,
    pollIntervalMs: pollInterval,
    requestTimeoutMs: requestTimeout,
  }));

const localSettings = z
  .strictObject({
    type: z.literal('local'),
    /** Program and arguments (no shell); `${VERSION}` and `${PORT}` are substituted. */
    command: z.array(text()).min(1),
    port: port(),
    /** @defaultValue 127.0.0.1 */
    host: text().default('127.0.0.1'),
    /** @defaultValue /health */
    healthPath: z.string().startsWith('/', 'must start with /').default('/health'),
    /** Working directory, relative to the plan file's directory. */
    cwd: text().optional(),
    env: environment().default({}),
    /** How long the new process has to answer healthPath. @defaultValue 10s */
    startTimeout: durationSchema().default(10_000),
    /** Time between SIGTERM and SIGKILL when stopping. @defaultValue 5s */
    gracePeriod: durationSchema().default(5000),
  })
  .transform(({ startTimeout, gracePeriod, ...rest }) => ({
    ...rest,
    startTimeoutMs: startTimeout,
    gracePeriodMs: gracePeriod,
  }));

/** Schema of `stages[].provider`: one of the provider types, by `type`. */
export const providerSettingsSchema = z.discriminatedUnion('type', [
  commandSettings,
  httpSettings,
  vercelSettings,
  railwaySettings,
  localSettings,
]);

export type ProviderConfig = z.output<typeof providerSettingsSchema>;
export type CommandSettings = z.output<typeof commandSettings>;
export type HttpSettings = z.output<typeof httpSettings>;
export type HttpRequestSettings = z.output<typeof httpRequest>;
export type HttpPollSettings = z.output<typeof httpPoll>;
export type VercelSettings = z.output<typeof vercelSettings>;
export type RailwaySettings = z.output<typeof railwaySettings>;
export type LocalSettings = z.output<typeof localSettings>;

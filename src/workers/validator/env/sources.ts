import { readFile } from 'node:fs/promises';
import { parse as parseDotenv } from 'dotenv';
import { z } from 'zod';
import { describeCause } from '../../../errors/index.js';
import { type CheckContext, CheckFailure } from '../check.js';
import { describeFetchError } from '../registry/client.js';

/** Vercel REST API. */
export const DEFAULT_VERCEL_API_URL = 'https://api.vercel.com';
/** Railway public GraphQL API. */
export const DEFAULT_RAILWAY_API_URL = 'https://backboard.railway.com/graphql/v2';

const baseUrl = z.url({ protocol: /^https?$/ }).or(z.string().regex(/^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/));

/** Where the env check reads variable names from. */
export const envSourceSchema = z.discriminatedUnion('type', [
  /** The worker's own environment. */
  z.strictObject({ type: z.literal('process') }),
  /** A dotenv file on the worker's machine. */
  z.strictObject({ type: z.literal('dotenv'), path: z.string().min(1) }),
  /** A Vercel project (GET /v9/projects/{projectId}/env). */
  z.strictObject({
    type: z.literal('vercel'),
    projectId: z.string().min(1),
    teamId: z.string().min(1).optional(),
    token: z.string().min(1),
    /** @defaultValue `https://api.vercel.com` */
    baseUrl: baseUrl.optional(),
    /** Only variables for this target (`production`, `preview`, `development`). @defaultValue any target */
    target: z.string().min(1).optional(),
  }),
  /** A Railway service or shared environment (GraphQL `variables` query). */
  z.strictObject({
    type: z.literal('railway'),
    projectId: z.string().min(1),
    environmentId: z.string().min(1),
    /** Leave out for the environment's shared variables. */
    serviceId: z.string().min(1).optional(),
    token: z.string().min(1),
    /**
     * `account` (account or workspace token, `Authorization: Bearer`) or `project`
     * (`Project-Access-Token` header). @defaultValue `account`
     */
    tokenType: z.enum(['account', 'project']).optional(),
    /** @defaultValue `https://backboard.railway.com/graphql/v2` */
    baseUrl: baseUrl.optional(),
  }),
]);

export type EnvSource = z.infer<typeof envSourceSchema>;

/**
 * Variables a source defines. A value is `undefined` when the source does not reveal it
 * (Vercel returns encrypted values), so only its presence can be checked. Values never leave
 * this worker: callers report names only.
 */
export type DefinedVariables = Map<string, string | undefined>;

/** A short description of a source for messages, e.g. `vercel project prj_x (production)`. */
export function describeEnvSource(source: EnvSource): string {
  switch (source.type) {
    case 'process':
      return 'the worker environment';
    case 'dotenv':
      return source.path;
    case 'vercel':
      return `vercel project ${source.projectId}${source.target ? ` (${source.target})` : ''}`;
    case 'railway':
      return `railway ${source.serviceId ? `service ${source.serviceId}` : `project ${source.projectId}`}`;
  }
}

export async function readDefinedVariables(
  source: EnvSource,
  context: CheckContext,
): Promise<DefinedVariables> {
  switch (source.type) {
    case 'process':
      return new Map(Object.entries(context.env));
    case 'dotenv':
      return readDotenv(context.resolve(source.path));
    case 'vercel':
      return readVercel(source, context);
    case 'railway':
      return readRailway(source, context);
  }
}

async function readDotenv(path: string): Promise<DefinedVariables> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new CheckFailure(`cannot read ${path}: ${describeCause(error)}`);
  }
  return new Map(Object.entries(parseDotenv(text)));
}

interface VercelEnv {
  key?: unknown;
  target?: unknown;
  type?: unknown;
  value?: unknown;
}

async function readVercel(
  source: Extract<EnvSource, { type: 'vercel' }>,
  context: CheckContext,
): Promise<DefinedVariables> {
  const base = context.resolve(source.baseUrl ?? DEFAULT_VERCEL_API_URL).replace(/\/+$/, '');
  const url = new URL(`${base}/v9/projects/${encodeURIComponent(source.projectId)}/env`);
  if (source.teamId) url.searchParams.set('teamId', source.teamId);
  const response = await fetch(url, {
    headers: { authorization: `Bearer ${context.resolve(source.token)}`, accept: 'application/json' },
    signal: context.signal,
  }).catch((cause: unknown) => {
    throw new CheckFailure(`cannot reach Vercel API ${url.host}: ${describeFetchError(cause)}`);
  });
  const body = (await response.json().catch(() => undefined)) as
    | { envs?: unknown; error?: { code?: unknown } }
    | undefined;
  if (!response.ok) {
    const code = typeof body?.error?.code === 'string' ? `, ${body.error.code}` : '';
    if (response.status === 401 || response.status === 403) {
      throw new CheckFailure(`Vercel refused the token (HTTP ${response.status}${code})`);
    }
    if (response.status === 404) {
      throw new CheckFailure(`Vercel project ${source.projectId} not found (HTTP 404${code})`);
    }
    throw new CheckFailure(`Vercel API answered HTTP ${response.status}${code}`);
  }
  if (!Array.isArray(body?.envs)) throw new CheckFailure('Vercel API answered without an "envs" list');
  const defined: DefinedVariables = new Map();
  for (const env of body.envs as VercelEnv[]) {
    if (typeof env.key !== 'string') continue;
    if (source.target && !targetsOf(env).includes(source.target)) continue;
    // Only plain values are readable; encrypted and sensitive ones prove presence alone.
    defined.set(env.key, env.type === 'plain' && typeof env.value === 'string' ? env.value : undefined);
  }
  return defined;
}

function targetsOf(env: VercelEnv): string[] {
  if (Array.isArray(env.target)) return env.target.filter((t): t is string => typeof t === 'string');
  return typeof env.target === 'string' ? [env.target] : [];
}

const RAILWAY_VARIABLES_QUERY =
  'query variables($projectId: String!, $environmentId: String!, $serviceId: String) ' +
  '{ variables(projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId) }';

async function readRailway(
  source: Extract<EnvSource, { type: 'railway' }>,
  context: CheckContext,
): Promise<DefinedVariables> {
  const url = new URL(context.resolve(source.baseUrl ?? DEFAULT_RAILWAY_API_URL));
  const token = context.resolve(source.token);
  const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
  if (source.tokenType === 'project') headers['project-access-token'] = token;
  else headers.authorization = `Bearer ${token}`;
  const variables: Record<string, string> = {
    projectId: source.projectId,
    environmentId: source.environmentId,
  };
  if (source.serviceId) variables.serviceId = source.serviceId;
  const response = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query: RAILWAY_VARIABLES_QUERY, variables }),
    signal: context.signal,
  }).catch((cause: unknown) => {
    throw new CheckFailure(`cannot reach Railway API ${url.host}: ${describeFetchError(cause)}`);
  });
  const body = (await response.json().catch(() => undefined)) as
    | { data?: { variables?: unknown } | null; errors?: { message?: unknown }[] }
    | undefined;
  // GraphQL reports most failures (such as "Not Authorized") as errors in a 200 answer.
  const graphqlError = body?.errors?.find((error) => typeof error.message === 'string')?.message;
  if (!response.ok || graphqlError !== undefined) {
    const detail = typeof graphqlError === 'string' ? `: ${graphqlError.slice(0, 200)}` : '';
    throw new CheckFailure(`Railway API answered HTTP ${response.status}${detail}`);
  }
  const map = body?.data?.variables;
  if (map === null || typeof map !== 'object' || Array.isArray(map)) {
    throw new CheckFailure('Railway API answered without a variables map');
  }
  return new Map(
    Object.entries(map as Record<string, unknown>).map(([key, value]) => [
      key,
      typeof value === 'string' ? value : String(value ?? ''),
    ]),
  );
}

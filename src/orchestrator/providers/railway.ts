import { excerpt, isTransientStatus, poll, sendRequest, TransientFailure } from './api-request.js';
import { ProviderFailure } from './errors.js';
import { checkVersion, resolveSettings } from './resolve-settings.js';
import type { RailwaySettings } from './settings.js';
import type { Artifact, ProviderContext, StageOutcome, StageProvider } from './types.js';

/**
 * Deploys with Railway's public GraphQL API (https://docs.railway.com/reference/public-api), for
 * each service of the stage, in parallel:
 *
 * 1. `deployments(input: { projectId, environmentId, serviceId }, first: N)` — the latest
 *    successful deployment is recorded as `<service>.previous_deployment_id`;
 * 2. with an `image`, `serviceInstanceUpdate(serviceId, environmentId, input: { source: { image } })`;
 * 3. `serviceInstanceDeploy(serviceId, environmentId)` (or `serviceInstanceRedeploy`);
 * 4. `deployments(…, first: 1)` until a new deployment appears (`<service>.deployment_id`), then
 *    `deployment(id) { status }` until SUCCESS; FAILED, CRASHED, REMOVED or SKIPPED fail.
 *
 * Rollback: `deploymentRollback(id)` to the recorded previous deployment, then waits until the
 * restored deployment is SUCCESS. Auth: `Authorization: Bearer <token>` (account, team or
 * workspace token) or `Project-Access-Token: <token>` (`tokenType: project`).
 */
export function createRailwayProvider(settings: RailwaySettings): StageProvider {
  return {
    type: 'railway',
    deploy: (context) =>
      forEachService(settings, context, 'deploy', checkVersion(context.deployment.version, 'version')),
    rollback: (context) => {
      const previous = context.deployment.previousVersion;
      const version = previous === undefined ? undefined : checkVersion(previous, 'previous version');
      return forEachService(settings, context, 'rollback', version);
    },
  };
}

const FAILED = ['FAILED', 'CRASHED', 'REMOVED', 'SKIPPED'];
/** Statuses of a deployment that served traffic and can be restored. */
const RESTORABLE = ['SUCCESS', 'SLEEPING', 'REMOVED'];

const DEPLOYMENTS = `query deployments($input: DeploymentListInput!, $first: Int) {
  deployments(input: $input, first: $first) { edges { node { id status createdAt staticUrl } } }
}`;
const DEPLOYMENT = `query deployment($id: String!) {
  deployment(id: $id) { id status staticUrl }
}`;
const SERVICE_INSTANCE_UPDATE = `mutation serviceInstanceUpdate($serviceId: String!, $environmentId: String, $input: ServiceInstanceUpdateInput!) {
  serviceInstanceUpdate(serviceId: $serviceId, environmentId: $environmentId, input: $input)
}`;
const SERVICE_INSTANCE_DEPLOY = `mutation serviceInstanceDeploy($serviceId: String!, $environmentId: String!) {
  serviceInstanceDeploy(serviceId: $serviceId, environmentId: $environmentId)
}`;
const SERVICE_INSTANCE_REDEPLOY = `mutation serviceInstanceRedeploy($serviceId: String!, $environmentId: String!) {
  serviceInstanceRedeploy(serviceId: $serviceId, environmentId: $environmentId)
}`;
const DEPLOYMENT_ROLLBACK = `mutation deploymentRollback($id: String!) {
  deploymentRollback(id: $id)
}`;

interface RailwayDeployment {
  id: string;
  status: string;
  staticUrl?: string | null;
}

interface ServiceRun {
  api: RailwayApi;
  settings: RailwaySettings;
  context: ProviderContext;
  service: string;
  serviceId: string;
  image?: string;
  environmentId: string;
  projectId?: string;
  lines: string[];
  keep: (artifact: Artifact) => void;
}

async function forEachService(
  settings: RailwaySettings,
  context: ProviderContext,
  action: 'deploy' | 'rollback',
  version: string | undefined,
): Promise<StageOutcome> {
  // A rollback restores a recorded deployment; images (which name the new version) are not used.
  const { value: s, secrets } = resolveSettings(
    action === 'rollback' ? { ...settings, services: stripImages(settings.services) } : settings,
    context,
    version,
  );
  const api = railwayApi(s, settings.requestTimeoutMs, context.signal, secrets);
  const lines: string[] = [];
  const artifacts: Artifact[] = [];
  const keep = (artifact: Artifact) => {
    artifacts.push(artifact);
    context.record(artifact);
  };
  const results = await Promise.allSettled(
    context.stage.services.map(async (service) => {
      const target = s.services[service];
      if (!target) throw new ProviderFailure(`railway: no Railway service configured for "${service}"`);
      const run = action === 'deploy' ? deployService : rollbackService;
      return run({
        api,
        settings,
        context,
        service,
        serviceId: target.serviceId,
        image: target.image,
        environmentId: s.environmentId,
        projectId: s.projectId,
        lines,
        keep,
      });
    }),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    if (failed.reason instanceof ProviderFailure && !failed.reason.log)
      throw new ProviderFailure(failed.reason.message, lines.join('\n'));
    throw failed.reason;
  }
  return { artifacts, log: lines.join('\n') };
}

function stripImages(services: RailwaySettings['services']): RailwaySettings['services'] {
  const out: RailwaySettings['services'] = {};
  for (const [name, { serviceId }] of Object.entries(services)) out[name] = { serviceId };
  return out;
}

async function recentDeployments(run: ServiceRun, first: number): Promise<RailwayDeployment[]> {
  const data = (await run.api.graphql(DEPLOYMENTS, {
    input: {
      ...(run.projectId ? { projectId: run.projectId } : {}),
      environmentId: run.environmentId,
      serviceId: run.serviceId,
    },
    first,
  })) as { deployments?: { edges?: { node?: RailwayDeployment }[] } };
  const edges = data.deployments?.edges;
  if (!Array.isArray(edges)) throw new ProviderFailure('railway: deployments answered without edges');
  return edges
    .map((edge) => edge.node)
    .filter((node): node is RailwayDeployment => typeof node?.id === 'string');
}

async function deployService(run: ServiceRun): Promise<void> {
  const { api, service, serviceId, environmentId, context } = run;
  const before = await recentDeployments(run, run.settings.historyLimit);
  const latestBefore = before[0]?.id;
  const previous = before.find((d) => d.status === 'SUCCESS' || d.status === 'SLEEPING');
  if (previous) run.keep({ name: `${service}.previous_deployment_id`, kind: 'id', value: previous.id });

  if (run.image) {
    const updated = await api.graphql(SERVICE_INSTANCE_UPDATE, {
      serviceId,
      environmentId,
      input: { source: { image: run.image } },
    });
    expectTrue(updated, 'serviceInstanceUpdate', service);
    run.lines.push(`${service}: image set to ${run.image}`);
  }
  const [mutation, name] =
    run.settings.trigger === 'redeploy'
      ? [SERVICE_INSTANCE_REDEPLOY, 'serviceInstanceRedeploy']
      : [SERVICE_INSTANCE_DEPLOY, 'serviceInstanceDeploy'];
  expectTrue(await api.graphql(mutation, { serviceId, environmentId }), name, service);
  context.logger.info({ service }, 'railway deployment triggered');

  const created = await poll(
    async () => {
      const [latest] = await recentDeployments(run, 1);
      return latest && latest.id !== latestBefore ? latest : undefined;
    },
    { intervalMs: run.settings.pollIntervalMs, signal: context.signal },
  );
  run.keep({ name: `${service}.deployment_id`, kind: 'id', value: created.id });
  run.lines.push(`${service}: deployment ${created.id} created`);

  const done = await waitForSuccess(run, created.id);
  if (done.staticUrl) run.keep({ name: `${service}.url`, kind: 'url', value: `https://${done.staticUrl}` });
}

async function waitForSuccess(run: ServiceRun, id: string): Promise<RailwayDeployment> {
  let last: string | undefined;
  return poll(
    async () => {
      const data = (await run.api.graphql(DEPLOYMENT, { id })) as { deployment?: RailwayDeployment };
      const deployment = data.deployment;
      if (!deployment)
        throw new ProviderFailure(`railway: service ${run.service}: deployment ${id} not found`);
      if (deployment.status !== last) {
        run.lines.push(`${run.service}: ${id} ${deployment.status}`);
        run.context.logger.info(
          { service: run.service, status: deployment.status },
          'railway deployment status',
        );
        last = deployment.status;
      }
      if (FAILED.includes(deployment.status))
        throw new ProviderFailure(
          `railway: service ${run.service}: deployment ${id} ended ${deployment.status}`,
        );
      return deployment.status === 'SUCCESS' ? deployment : undefined;
    },
    { intervalMs: run.settings.pollIntervalMs, signal: run.context.signal },
  );
}

async function rollbackService(run: ServiceRun): Promise<void> {
  const { service, context } = run;
  const recorded = context.artifacts;
  const ours = recorded?.find((a) => a.name === `${service}.deployment_id`)?.value;
  let target = recorded?.find((a) => a.name === `${service}.previous_deployment_id`)?.value;
  if (!target && recorded && !ours) {
    run.lines.push(`${service}: the deploy created no deployment; nothing to roll back`);
    return;
  }
  const recent = await recentDeployments(run, run.settings.historyLimit);
  if (!target) {
    // Nothing recorded: the newest deployment is taken to be this deployment's own.
    const newest = ours ?? recent[0]?.id;
    target = recent.find((d) => d.id !== newest && RESTORABLE.includes(d.status))?.id;
  }
  if (!target)
    throw new ProviderFailure(`railway: service ${service}: no earlier deployment to roll back to`);

  const latestBefore = recent[0]?.id;
  expectTrue(await run.api.graphql(DEPLOYMENT_ROLLBACK, { id: target }), 'deploymentRollback', service);
  run.lines.push(`${service}: rolling back to ${target}`);
  context.logger.info({ service, deploymentId: target }, 'railway rollback requested');

  // Railway restores by creating a new deployment from the old one; wait for whichever serves.
  const restored = await poll(
    async () => {
      const [latest] = await recentDeployments(run, 1);
      if (latest && latest.id !== latestBefore) return latest.id;
      const data = (await run.api.graphql(DEPLOYMENT, { id: target })) as { deployment?: RailwayDeployment };
      return data.deployment?.status === 'SUCCESS' ? target : undefined;
    },
    { intervalMs: run.settings.pollIntervalMs, signal: context.signal },
  );
  await waitForSuccess(run, restored);
  run.keep({ name: `${service}.restored_deployment_id`, kind: 'id', value: restored });
}

function expectTrue(data: unknown, field: string, service: string): void {
  if ((data as Record<string, unknown> | undefined)?.[field] !== true)
    throw new ProviderFailure(`railway: service ${service}: ${field} did not succeed`);
}

interface RailwayApi {
  graphql(query: string, variables: Record<string, unknown>): Promise<unknown>;
}

function railwayApi(
  s: Pick<RailwaySettings, 'token' | 'tokenType' | 'baseUrl'>,
  timeoutMs: number,
  signal: AbortSignal,
  secrets: string[],
): RailwayApi {
  const auth: Record<string, string> =
    s.tokenType === 'project' ? { 'project-access-token': s.token } : { authorization: `Bearer ${s.token}` };
  return {
    async graphql(query, variables) {
      const operation = /^(?:query|mutation) (\w+)/.exec(query)?.[1] ?? 'request';
      const answer = await sendRequest({
        method: 'POST',
        url: s.baseUrl,
        headers: auth,
        body: { query, variables },
        timeoutMs,
        signal,
        secrets,
        label: 'railway',
      });
      const json = answer.json as { data?: unknown; errors?: { message?: string }[] } | undefined;
      const error = json?.errors?.[0]?.message;
      if (error || answer.status < 200 || answer.status >= 300) {
        const detail = error ?? answer.text;
        const message = `railway: ${operation} answered ${answer.status}${detail ? `: ${excerpt(detail, secrets)}` : ''}`;
        throw isTransientStatus(answer.status) ? new TransientFailure(message) : new ProviderFailure(message);
      }
      if (json?.data === undefined || json.data === null)
        throw new ProviderFailure(`railway: ${operation} answered without data`);
      return json.data;
    },
  };
}

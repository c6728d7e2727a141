import { excerpt, isTransientStatus, poll, sendRequest, TransientFailure } from './api-request.js';
import { ProviderFailure } from './errors.js';
import { checkVersion, resolveSettings } from './resolve-settings.js';
import type { VercelSettings } from './settings.js';
import type { Artifact, ProviderContext, StageOutcome, StageProvider } from './types.js';

/**
 * Deploys with Vercel's REST API (https://vercel.com/docs/rest-api):
 *
 * 1. `GET /v6/deployments?projectId=…&target=production&state=READY&limit=…` — the current
 *    production deployment, recorded as `previous_deployment_id` (the rollback target);
 * 2. `POST /v13/deployments` with `name`, `project`, `target`, `gitSource` or `deploymentId`
 *    (redeploy) and `meta` (materiVersion, materiDeploymentId, materiStage);
 * 3. `GET /v13/deployments/{id}` until `readyState` (or `status`) is READY; ERROR or CANCELED fail;
 * 4. with `promote: true`, `POST /v10/projects/{project}/promote/{id}`.
 *
 * Rollback: `POST /v9/projects/{project}/rollback/{previous id}`. Every request carries
 * `?teamId=` when set and `Authorization: Bearer <token>`.
 */
export function createVercelProvider(settings: VercelSettings): StageProvider {
  return {
    type: 'vercel',
    deploy: (context) => deploy(settings, context),
    rollback: (context) => rollback(settings, context),
  };
}

const FAILED_STATES = ['ERROR', 'CANCELED'];

/** A deployment as `GET /v6/deployments` lists it. */
interface ListedDeployment {
  uid: string;
  url?: string;
  meta?: Record<string, string>;
}

async function deploy(settings: VercelSettings, context: ProviderContext): Promise<StageOutcome> {
  const version = checkVersion(context.deployment.version, 'version');
  const api = vercelApi(settings, context, version);
  const { value: s } = resolveSettings(settings, context, version);
  const lines: string[] = [];
  const artifacts: Artifact[] = [];
  const keep = (artifact: Artifact) => {
    artifacts.push(artifact);
    context.record(artifact);
  };

  if (changesProduction(s)) {
    const [current] = await listProduction(api, s.project, 1);
    if (current) {
      keep({ name: 'previous_deployment_id', kind: 'id', value: current.uid });
      lines.push(`production was ${current.uid}`);
    }
  }

  const created = (await api.call('POST', '/v13/deployments', {
    body: {
      name: s.name ?? s.project,
      project: s.project,
      target: s.target,
      ...(s.gitSource ? { gitSource: s.gitSource } : {}),
      ...(s.deploymentId ? { deploymentId: s.deploymentId } : {}),
      meta: {
        materiVersion: version,
        materiDeploymentId: context.deployment.id,
        materiStage: context.stage.name,
      },
    },
  })) as { id?: string; url?: string };
  if (typeof created?.id !== 'string')
    throw new ProviderFailure('vercel: POST /v13/deployments answered without a deployment id');
  keep({ name: 'deployment_id', kind: 'id', value: created.id });
  lines.push(`created ${created.id}`);
  context.logger.info({ deploymentId: created.id }, 'vercel deployment created');

  let lastState: string | undefined;
  const ready = await poll(
    async () => {
      const deployment = (await api.call('GET', `/v13/deployments/${encodeURIComponent(created.id!)}`)) as {
        readyState?: string;
        status?: string;
        url?: string;
        errorMessage?: string;
        errorCode?: string;
      };
      const state = deployment.readyState ?? deployment.status;
      if (state !== lastState) {
        lines.push(`readyState=${state}`);
        context.logger.info({ readyState: state }, 'vercel deployment state');
        lastState = state;
      }
      if (state && FAILED_STATES.includes(state)) {
        const why = deployment.errorMessage ?? deployment.errorCode;
        throw new ProviderFailure(
          `vercel: deployment ${created.id} ended ${state}${why ? `: ${excerpt(why, api.secrets)}` : ''}`,
          lines.join('\n'),
        );
      }
      return state === 'READY' ? deployment : undefined;
    },
    { intervalMs: settings.pollIntervalMs, signal: context.signal },
  );
  const url = ready.url ?? created.url;
  if (url) keep({ name: 'url', kind: 'url', value: url.startsWith('http') ? url : `https://${url}` });

  if (s.promote) {
    await api.call(
      'POST',
      `/v10/projects/${encodeURIComponent(s.project)}/promote/${encodeURIComponent(created.id)}`,
    );
    lines.push(`promoted ${created.id} to production`);
  }
  return { artifacts, log: lines.join('\n') };
}

async function rollback(settings: VercelSettings, context: ProviderContext): Promise<StageOutcome> {
  const previous = context.deployment.previousVersion;
  const version = previous === undefined ? undefined : checkVersion(previous, 'previous version');
  const api = vercelApi(settings, context, version);
  const { value: s } = resolveSettings({ ...settings, gitSource: undefined }, context, version);
  if (!changesProduction(s))
    return { artifacts: [], log: `target ${s.target} without promote: production was not changed` };

  const recorded = context.artifacts;
  const ours = recorded?.find((a) => a.name === 'deployment_id')?.value;
  let targetId = recorded?.find((a) => a.name === 'previous_deployment_id')?.value;
  if (!targetId && recorded && !ours)
    return { artifacts: [], log: 'the deploy created no deployment: nothing to roll back' };
  if (!targetId) {
    const candidates = (await listProduction(api, s.project, settings.historyLimit)).filter(
      (d) => d.uid !== ours && d.meta?.materiDeploymentId !== context.deployment.id,
    );
    targetId = (
      candidates.find((d) => previous !== undefined && d.meta?.materiVersion === previous) ?? candidates[0]
    )?.uid;
  }
  if (!targetId) throw new ProviderFailure('vercel: no previous production deployment to roll back to');

  await api.call(
    'POST',
    `/v9/projects/${encodeURIComponent(s.project)}/rollback/${encodeURIComponent(targetId)}`,
    {
      query: { description: `materi: roll back deployment ${context.deployment.id}` },
    },
  );
  context.logger.info({ deploymentId: targetId }, 'vercel production rolled back');
  const restored: Artifact = { name: 'restored_deployment_id', kind: 'id', value: targetId };
  context.record(restored);
  return { artifacts: [restored], log: `rolled production back to ${targetId}` };
}

/** Whether the deploy replaces what production serves (and so what a rollback must restore). */
function changesProduction(s: Pick<VercelSettings, 'target' | 'promote'>): boolean {
  return s.target === 'production' || s.promote;
}

async function listProduction(api: VercelApi, project: string, limit: number): Promise<ListedDeployment[]> {
  const answer = (await api.call('GET', '/v6/deployments', {
    query: { projectId: project, target: 'production', state: 'READY', limit: String(limit) },
  })) as { deployments?: ListedDeployment[] };
  if (!Array.isArray(answer?.deployments))
    throw new ProviderFailure('vercel: GET /v6/deployments answered without a deployments list');
  return answer.deployments.filter((d) => typeof d?.uid === 'string');
}

interface VercelApi {
  secrets: string[];
  call(
    method: string,
    path: string,
    options?: { query?: Record<string, string>; body?: unknown },
  ): Promise<unknown>;
}

function vercelApi(
  settings: VercelSettings,
  context: ProviderContext,
  version: string | undefined,
): VercelApi {
  const { value, secrets } = resolveSettings(
    { token: settings.token, teamId: settings.teamId, baseUrl: settings.baseUrl },
    context,
    version,
  );
  return {
    secrets,
    async call(method, path, options = {}) {
      const url = new URL(`${value.baseUrl.replace(/\/+$/, '')}${path}`);
      for (const [key, v] of Object.entries(options.query ?? {})) url.searchParams.set(key, v);
      if (value.teamId) url.searchParams.set('teamId', value.teamId);
      const answer = await sendRequest({
        method,
        url: url.toString(),
        headers: { authorization: `Bearer ${value.token}` },
        body: options.body,
        timeoutMs: settings.requestTimeoutMs,
        signal: context.signal,
        secrets,
        label: 'vercel',
      });
      if (answer.status >= 200 && answer.status < 300) return answer.json;
      const error = (answer.json as { error?: { code?: string; message?: string } } | undefined)?.error;
      const detail = error ? [error.code, error.message].filter(Boolean).join(': ') : answer.text;
      const message = `vercel: ${method} ${path} answered ${answer.status}${detail ? ` ${excerpt(detail, secrets)}` : ''}`;
      throw isTransientStatus(answer.status) ? new TransientFailure(message) : new ProviderFailure(message);
    },
  };
}

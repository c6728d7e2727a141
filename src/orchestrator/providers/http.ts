import {
  type ApiResponse,
  describeUrl,
  excerpt,
  isTransientStatus,
  poll,
  sendRequest,
  TransientFailure,
  valueAt,
} from './api-request.js';
import { ProviderFailure } from './errors.js';
import { checkVersion, resolveSettings } from './resolve-settings.js';
import type { HttpPollSettings, HttpRequestSettings, HttpSettings } from './settings.js';
import type { Artifact, ProviderContext, StageOutcome, StageProvider } from './types.js';

/**
 * Deploys through a deploy hook: one HTTP request (method, url, headers, body with `${...}`), then,
 * when `poll` is set, polls a status URL until a JSON field holds a success or failure value.
 * Rollback sends the rollback hook, or the deploy hook again with the previous version as
 * `${VERSION}` when no rollback hook is set.
 */
export function createHttpProvider(settings: HttpSettings): StageProvider {
  return {
    type: 'http',
    deploy: (context) =>
      runHook(
        settings,
        context,
        settings.deploy,
        settings.poll,
        checkVersion(context.deployment.version, 'version'),
      ),
    rollback: async (context) => {
      const previous = context.deployment.previousVersion;
      const version = previous === undefined ? undefined : checkVersion(previous, 'previous version');
      if (settings.rollback) {
        const { poll: rollbackPoll, ...hook } = settings.rollback;
        return runHook(settings, context, hook, rollbackPoll, version);
      }
      if (version === undefined)
        throw new ProviderFailure('no previous version is known and no rollback hook is set');
      return runHook(settings, context, settings.deploy, settings.poll, version);
    },
  };
}

async function runHook(
  settings: HttpSettings,
  context: ProviderContext,
  hookSettings: HttpRequestSettings,
  pollSettings: HttpPollSettings | undefined,
  version: string | undefined,
): Promise<StageOutcome> {
  const lines: string[] = [];
  const artifacts: Artifact[] = [];
  const keep = (artifact: Artifact) => {
    artifacts.push(artifact);
    context.record(artifact);
  };
  const { value: hook, secrets } = resolveSettings(hookSettings, context, version);
  const label = 'deploy hook';
  const response = await sendRequest({
    method: hook.method,
    url: hook.url,
    headers: hook.headers,
    body: hook.body,
    timeoutMs: settings.requestTimeoutMs,
    signal: context.signal,
    secrets,
    label,
  });
  const where = `${hook.method} ${describeUrl(hook.url, secrets)}`;
  const accepted = hook.expectStatus
    ? hook.expectStatus.includes(response.status)
    : response.status >= 200 && response.status < 300;
  if (!accepted)
    throw new ProviderFailure(
      `${label} ${where} answered ${response.status}${response.text ? `: ${excerpt(response.text, secrets)}` : ''}`,
    );
  lines.push(`${where} -> ${response.status}`);
  context.logger.info({ status: response.status }, 'deploy hook accepted');

  let hookId: string | undefined;
  if (hook.idField) {
    const id = valueAt(response.json, hook.idField);
    if (typeof id !== 'string' && typeof id !== 'number')
      throw new ProviderFailure(`${label} ${where} answered without "${hook.idField}" in its JSON body`);
    hookId = String(id);
    keep({ name: 'hook_id', kind: 'id', value: hookId });
  }

  if (!pollSettings) return { artifacts, log: lines.join('\n') };

  const { value: status, secrets: pollSecrets } = resolveSettings(pollSettings, context, version, {
    HOOK_ID: hookId,
  });
  const allSecrets = [...secrets, ...pollSecrets];
  const statusWhere = `${status.method} ${describeUrl(status.url, allSecrets)}`;
  let last: string | undefined;
  const final = await poll<ApiResponse>(
    async () => {
      const answer = await sendRequest({
        method: status.method,
        url: status.url,
        headers: status.headers,
        timeoutMs: settings.requestTimeoutMs,
        signal: context.signal,
        secrets: allSecrets,
        label: 'status poll',
      });
      if (answer.status < 200 || answer.status >= 300) {
        const message = `status poll ${statusWhere} answered ${answer.status}: ${excerpt(answer.text, allSecrets)}`;
        throw isTransientStatus(answer.status) ? new TransientFailure(message) : new ProviderFailure(message);
      }
      const value = valueAt(answer.json, status.field);
      const text = value === undefined || value === null ? undefined : String(value);
      if (text !== last) {
        lines.push(`${status.field}=${text ?? '(missing)'}`);
        context.logger.info({ status: text }, 'deploy status');
        last = text;
      }
      if (text !== undefined && status.failure.includes(text))
        throw new ProviderFailure(
          `status poll ${statusWhere}: ${status.field} is "${text}"`,
          lines.join('\n'),
        );
      return text !== undefined && status.success.includes(text) ? answer : undefined;
    },
    { intervalMs: status.intervalMs, signal: context.signal },
  );
  if (status.urlField) {
    const url = valueAt(final.json, status.urlField);
    if (typeof url === 'string' && url) keep({ name: 'url', kind: 'url', value: url });
  }
  return { artifacts, log: lines.join('\n') };
}

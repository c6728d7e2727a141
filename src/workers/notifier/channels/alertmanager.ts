import { expandReferences } from '../../../runtime/references.js';
import type { OpenIncident } from '../incidents.js';
import type { NotificationMessage } from '../notification.js';
import type { AlertmanagerChannelSettings } from '../settings.js';
import { renderTemplate } from '../templates.js';
import { answerExcerpt, parseHttpUrl, postBody } from './http.js';
import { ChannelError, type ChannelFactory } from './types.js';

/**
 * Prometheus Alertmanager API v2 (`POST /api/v2/alerts`, answered 200). A failure or rollback
 * posts one alert per service, labelled `alertname, environment, project, service, severity`
 * (bus alerts: `alertname=<alert>, group, severity`), with `endsAt` = now + `endsAfter` so an
 * alert nobody resolves still ends. The next success in the same project and environment posts
 * the same labels with `endsAt` = now, which resolves them.
 *
 * @module
 */

/** One alert as the API takes it (`postableAlert`). */
export interface PostableAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt?: string;
  generatorURL: string;
}

function description(message: NotificationMessage): string {
  const parts = [message.problem?.reason, message.problem?.details].filter(Boolean);
  if (message.deploymentId) parts.push(`deployment ${message.deploymentId}`);
  return parts.join(' — ') || message.headline;
}

export const createAlertmanagerChannel: ChannelFactory<AlertmanagerChannelSettings> = (settings, deps) => {
  const target = `alertmanager:${deps.name}`;

  async function post(
    base: URL,
    alerts: PostableAlert[],
    headers: Record<string, string> | undefined,
    timeoutMs: number,
    signal?: AbortSignal,
  ) {
    const url = new URL(`${base.pathname.replace(/\/+$/, '')}/api/v2/alerts`, base);
    const answer = await postBody(url, JSON.stringify(alerts), {
      target,
      field: 'url',
      headers,
      timeoutMs,
      signal,
    });
    if (answer.status !== 200) {
      throw new ChannelError(
        `${target}: Alertmanager answered HTTP ${answer.status}: ${answerExcerpt(answer.body) || '(empty body)'}`,
      );
    }
  }

  return {
    name: deps.name,
    type: 'alertmanager',
    target,
    tracksIncidents: true,
    async send(message, options) {
      if (message.incident === 'none') {
        return {
          suppressed: 'Alertmanager takes failures, rollbacks, alerts and the successes that resolve them',
        };
      }
      const resolved = expandReferences(settings, deps.lookup, { where: target });
      const base = parseHttpUrl(resolved.url, target, 'url');
      const timeoutMs = resolved.timeoutMs ?? deps.timeoutMs;
      const now = new Date();
      const annotations = {
        summary: renderTemplate(deps.templates.incidentSummary, message.values) || message.headline,
        description: description(message),
      };
      if (message.incident === 'trigger') {
        const alertname = message.event.type === 'alert:raised' ? message.values.alert : resolved.alertname;
        const startsAt = message.event.time.toISOString();
        const endsAt = new Date(
          Math.max(now.getTime(), message.event.time.getTime()) + resolved.endsAfter,
        ).toISOString();
        const opened: OpenIncident[] = message.incidentTargets.map((t) => ({
          key: t.key,
          component: t.component,
          labels: { alertname, ...t.labels },
          startsAt,
          eventId: message.event.id,
        }));
        await post(
          base,
          opened.map((o) => ({
            labels: o.labels,
            annotations,
            startsAt,
            endsAt,
            generatorURL: message.link,
          })),
          resolved.headers,
          timeoutMs,
          options?.signal,
        );
        await deps.incidents.open(deps.name, message.incidentScope, opened);
        return { detail: `posted ${opened.length} alert(s)` };
      }
      let open = await deps.incidents.list(deps.name, message.incidentScope);
      if (message.event.type === 'alert:raised') {
        const keys = new Set(message.incidentTargets.map((t) => t.key));
        open = open.filter((o) => keys.has(o.key));
      }
      if (open.length === 0) return { suppressed: `no open alert in ${message.incidentScope}` };
      // Same labels, endsAt now: Alertmanager marks the alerts resolved.
      await post(
        base,
        open.map((o) => ({
          labels: o.labels,
          annotations,
          startsAt: o.startsAt,
          endsAt: now.toISOString(),
          generatorURL: message.link,
        })),
        resolved.headers,
        timeoutMs,
        options?.signal,
      );
      await deps.incidents.close(
        deps.name,
        message.incidentScope,
        open.map((o) => o.key),
      );
      return { detail: `resolved ${open.length} alert(s)` };
    },
  };
};

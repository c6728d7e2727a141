import { expandReferences } from '../../../runtime/references.js';
import type { OpenIncident } from '../incidents.js';
import type { IncidentTarget, NotificationMessage } from '../notification.js';
import type { PagerDutyChannelSettings } from '../settings.js';
import { renderTemplate } from '../templates.js';
import { answerExcerpt, parseHttpUrl, postBody } from './http.js';
import { ChannelError, type ChannelFactory } from './types.js';

/**
 * PagerDuty Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/):
 * POST `/v2/enqueue`, answered 202 `{ status: 'success', dedup_key }`. A failure or rollback
 * triggers one event per service with the dedup key `materi:<project>:<environment>:<service>`;
 * the next successful deployment of the same project and environment resolves every key still
 * open there. Bus alerts trigger and resolve `materi:bus:<group>:<alert>`.
 *
 * @module
 */

const SUMMARY_MAX = 1024;

/** The `custom_details` of a trigger: the facts of the message, without empty ones. */
function customDetails(message: NotificationMessage, target: IncidentTarget): Record<string, string> {
  const details: Record<string, string> = {
    deployment_id: message.deploymentId,
    event_id: message.event.id,
    event_type: message.event.type,
    status: message.status,
    project: message.project,
    environment: message.environment,
    version: message.version,
    service: target.component,
    reason: message.problem?.reason ?? '',
    failing_stage: message.problem?.stage ?? '',
    failed_gate: message.problem?.gate ?? '',
    failing_check: message.problem?.check ?? '',
    error_details: message.problem?.details ?? '',
  };
  for (const [label, value] of message.details) details[label.toLowerCase().replace(/\W+/g, '_')] ??= value;
  return Object.fromEntries(Object.entries(details).filter(([, v]) => v !== ''));
}

/** The body of a trigger event for one incident target. */
export function pagerDutyTrigger(
  message: NotificationMessage,
  target: IncidentTarget,
  routingKey: string,
  summary: string,
  source: string,
): Record<string, unknown> {
  return {
    routing_key: routingKey,
    event_action: 'trigger',
    dedup_key: target.key,
    client: 'Materi Deploy',
    client_url: message.link,
    payload: {
      summary: summary.length > SUMMARY_MAX ? `${summary.slice(0, SUMMARY_MAX - 1)}…` : summary,
      source,
      // PagerDuty's severities are critical | error | warning | info; ours map one to one.
      severity: message.severity,
      timestamp: message.event.time.toISOString(),
      component: target.component,
      group: message.event.type === 'alert:raised' ? target.component : message.environment,
      class: message.event.type,
      custom_details: customDetails(message, target),
    },
    links: [{ href: message.link, text: 'Open in Shield' }],
  };
}

interface PagerDutyAnswer {
  status?: string;
  message?: string;
  dedup_key?: string;
  errors?: string[];
}

export const createPagerDutyChannel: ChannelFactory<PagerDutyChannelSettings> = (settings, deps) => {
  const target = `pagerduty:${deps.name}`;

  async function post(url: URL, body: Record<string, unknown>, timeoutMs: number, signal?: AbortSignal) {
    const answer = await postBody(url, JSON.stringify(body), { target, field: 'url', timeoutMs, signal });
    let parsed: PagerDutyAnswer = {};
    try {
      parsed = JSON.parse(answer.body) as PagerDutyAnswer;
    } catch {
      // Reported below with the raw excerpt.
    }
    if (answer.status !== 202 || parsed.status !== 'success') {
      const why = parsed.message
        ? `${parsed.message}${parsed.errors?.length ? ` (${parsed.errors.join('; ')})` : ''}`
        : answerExcerpt(answer.body) || '(empty body)';
      throw new ChannelError(
        `${target}: PagerDuty answered HTTP ${answer.status}: ${answerExcerpt(why, 300)}`,
      );
    }
    return parsed.dedup_key ?? String(body.dedup_key);
  }

  return {
    name: deps.name,
    type: 'pagerduty',
    target,
    tracksIncidents: true,
    async send(message, options) {
      if (message.incident === 'none') {
        return {
          suppressed: 'PagerDuty takes failures, rollbacks, alerts and the successes that resolve them',
        };
      }
      const resolved = expandReferences(settings, deps.lookup, { where: target });
      const url = parseHttpUrl(resolved.url, target, 'url');
      const timeoutMs = resolved.timeoutMs ?? deps.timeoutMs;
      const signal = options?.signal;
      if (message.incident === 'trigger') {
        const summary = renderTemplate(deps.templates.incidentSummary, message.values) || message.headline;
        const source = resolved.source ?? message.incidentScope;
        const results = await Promise.allSettled(
          message.incidentTargets.map((t) =>
            post(url, pagerDutyTrigger(message, t, resolved.routingKey, summary, source), timeoutMs, signal),
          ),
        );
        const opened: OpenIncident[] = [];
        results.forEach((r, i) => {
          const t = message.incidentTargets[i]!;
          if (r.status === 'fulfilled') {
            opened.push({
              key: t.key,
              component: t.component,
              labels: t.labels,
              startsAt: message.event.time.toISOString(),
              eventId: message.event.id,
            });
          }
        });
        await deps.incidents.open(deps.name, message.incidentScope, opened);
        throwIfAnyFailed(results);
        return {
          providerId: opened.map((o) => o.key).join(','),
          detail: `triggered ${opened.length} incident(s)`,
        };
      }
      let open = await deps.incidents.list(deps.name, message.incidentScope);
      // A resolved bus alert closes its own incident only; a successful deployment closes all of its scope.
      if (message.event.type === 'alert:raised') {
        const keys = new Set(message.incidentTargets.map((t) => t.key));
        open = open.filter((o) => keys.has(o.key));
      }
      if (open.length === 0) return { suppressed: `no open incident in ${message.incidentScope}` };
      const results = await Promise.allSettled(
        open.map((o) =>
          post(
            url,
            { routing_key: resolved.routingKey, event_action: 'resolve', dedup_key: o.key },
            timeoutMs,
            signal,
          ),
        ),
      );
      const closed = open.filter((_, i) => results[i]!.status === 'fulfilled').map((o) => o.key);
      await deps.incidents.close(deps.name, message.incidentScope, closed);
      throwIfAnyFailed(results);
      return { providerId: closed.join(','), detail: `resolved ${closed.length} incident(s)` };
    },
  };
};

function throwIfAnyFailed(results: PromiseSettledResult<unknown>[]): void {
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed.length === 0) return;
  const first = failed[0]!.reason as Error;
  const note = results.length > 1 ? ` (${failed.length} of ${results.length} events failed)` : '';
  throw new ChannelError(`${first.message}${note}`);
}

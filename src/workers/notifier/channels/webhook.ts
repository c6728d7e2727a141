import { createHmac } from 'node:crypto';
import { toJson } from '@bufbuild/protobuf';
import { resolveEventType } from '../../../events/catalog.js';
import { expandReferences } from '../../../runtime/references.js';
import type { NotificationMessage } from '../notification.js';
import type { WebhookChannelSettings } from '../settings.js';
import { answerExcerpt, parseHttpUrl, postBody } from './http.js';
import { ChannelError, type ChannelFactory } from './types.js';

/**
 * Generic webhook: POSTs the event as JSON (the stream entry's envelope fields, `data` in the
 * proto3 JSON mapping, and a `notification` object with the notifier's reading of it). With a
 * secret, `X-Materi-Signature: sha256=<hex HMAC-SHA256 of the raw body>` lets the receiver check
 * the sender; `X-Materi-Timestamp` (Unix seconds) and `X-Materi-Event` (the type) come along.
 *
 * @module
 */

/** The JSON body the webhook channel posts for a message. */
export function webhookBody(message: NotificationMessage, channel: string): Record<string, unknown> {
  const event = message.event;
  return {
    id: event.id,
    type: event.type,
    source: event.source,
    time: event.time.toISOString(),
    correlation_id: event.correlationId,
    causation_id: event.causationId,
    deployment_id: event.deploymentId,
    priority: event.priority,
    schema: event.schema,
    data: toJson(resolveEventType(event.type).schema, event.data as never),
    notification: {
      channel,
      severity: message.severity,
      status: message.status,
      headline: message.headline,
      subject: message.subject,
      reason: message.problem?.reason ?? '',
      link: message.link,
    },
  };
}

/** `sha256=<hex>`: the HMAC-SHA256 of the raw body with the shared secret. */
export function signBody(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export const createWebhookChannel: ChannelFactory<WebhookChannelSettings> = (settings, deps) => {
  const target = `webhook:${deps.name}`;
  return {
    name: deps.name,
    type: 'webhook',
    target,
    tracksIncidents: false,
    async send(message, options) {
      const resolved = expandReferences(settings, deps.lookup, { where: target });
      const url = parseHttpUrl(resolved.url, target, 'url');
      const body = JSON.stringify(webhookBody(message, deps.name));
      const headers: Record<string, string> = {
        ...resolved.headers,
        'x-materi-timestamp': String(Math.floor(Date.now() / 1000)),
        'x-materi-event': message.event.type,
        'x-materi-delivery': message.event.id,
      };
      if (resolved.secret) headers['x-materi-signature'] = signBody(body, resolved.secret);
      const answer = await postBody(url, body, {
        target,
        field: 'url',
        headers,
        timeoutMs: resolved.timeoutMs ?? deps.timeoutMs,
        signal: options?.signal,
      });
      if (answer.status < 200 || answer.status >= 300) {
        throw new ChannelError(
          `${target}: webhook answered HTTP ${answer.status}: ${answerExcerpt(answer.body) || '(empty body)'}`,
        );
      }
      return { detail: `HTTP ${answer.status}` };
    },
  };
};

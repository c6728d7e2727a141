import { expandReferences } from '../../../runtime/references.js';
import type { StatusChannelSettings } from '../settings.js';
import { renderTemplate } from '../templates.js';
import { answerExcerpt, parseHttpUrl, postBody } from './http.js';
import { ChannelError, type ChannelFactory } from './types.js';

/**
 * Team status updates: one short line per phase (started, succeeded, failed, rolled back), posted
 * as `{ "text": "…" }` to a Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat,
 * Discord's `/slack` endpoint). Any 2xx answer counts as accepted, since not every compatible
 * server answers Slack's `ok`.
 *
 * @module
 */
export const createStatusChannel: ChannelFactory<StatusChannelSettings> = (settings, deps) => {
  const target = `status:${deps.name}`;
  return {
    name: deps.name,
    type: 'status',
    target,
    tracksIncidents: false,
    async send(message, options) {
      const resolved = expandReferences(settings, deps.lookup, { where: target });
      const url = parseHttpUrl(resolved.webhookUrl, target, 'webhookUrl');
      const line = renderTemplate(deps.templates.statusLine, message.values) || message.headline;
      const answer = await postBody(url, JSON.stringify({ text: line }), {
        target,
        field: 'webhookUrl',
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

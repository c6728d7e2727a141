import { expandReferences } from '../../../runtime/references.js';
import type { NotificationMessage } from '../notification.js';
import type { SlackChannelSettings } from '../settings.js';
import { renderTemplate } from '../templates.js';
import { answerExcerpt, parseHttpUrl, postBody } from './http.js';
import { ChannelError, type ChannelFactory } from './types.js';

/**
 * Slack incoming webhook (https://api.slack.com/messaging/webhooks): POST `{ text, blocks }`
 * with Block Kit blocks; Slack answers 200 with the body `ok`, or an error code as text
 * (`invalid_payload`, `no_service`, …).
 *
 * @module
 */

/** Block Kit limits (https://api.slack.com/reference/block-kit/blocks). */
const LIMITS = { header: 150, sectionText: 3000, field: 2000, fields: 10, buttonText: 75, contextText: 3000 };

function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Slack's mrkdwn treats `&`, `<` and `>` as control characters. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The labelled facts shown in a Slack section (and an e-mail table): status, version, … */
export function summaryFields(message: NotificationMessage): [string, string][] {
  const fields: [string, string][] = [
    ['Status', message.status],
    ['Version', message.version],
    ['Environment', message.environment],
    ['Project', message.project],
  ];
  const problem = message.problem;
  if (problem?.stage) fields.push(['Failing stage', problem.stage]);
  if (problem?.gate) fields.push(['Gate', problem.gate]);
  if (problem?.check) fields.push(['Failing check', problem.check]);
  if (message.services.length > 0) fields.push(['Services', message.services.join(', ')]);
  fields.push(...message.details);
  if (message.deploymentId) fields.push(['Deployment', message.deploymentId]);
  return fields.filter(([, value]) => value !== '');
}

/** The Block Kit blocks of a message: header, section with fields, a button to Shield, context. */
export function slackBlocks(message: NotificationMessage, title: string): Record<string, unknown>[] {
  const lines = [`*${escapeMrkdwn(message.headline)}*`];
  if (message.summary) lines.push(escapeMrkdwn(message.summary));
  if (message.problem?.reason) lines.push(escapeMrkdwn(message.problem.reason));
  if (message.problem?.details) lines.push(`\`\`\`${escapeMrkdwn(cut(message.problem.details, 1500))}\`\`\``);
  const fields = summaryFields(message)
    .slice(0, LIMITS.fields)
    .map(([label, value]) => ({
      type: 'mrkdwn',
      text: cut(`*${escapeMrkdwn(label)}*\n${escapeMrkdwn(value)}`, LIMITS.field),
    }));
  const button: Record<string, unknown> = {
    type: 'button',
    text: {
      type: 'plain_text',
      text: message.phase === 'waiting' ? 'Approve or reject in Shield' : 'Open in Shield',
      emoji: true,
    },
    url: message.link,
    action_id: 'open_shield',
  };
  if (message.severity === 'critical') button.style = 'danger';
  else if (message.phase === 'succeeded') button.style = 'primary';
  return [
    { type: 'header', text: { type: 'plain_text', text: cut(title, LIMITS.header), emoji: true } },
    { type: 'section', text: { type: 'mrkdwn', text: cut(lines.join('\n'), LIMITS.sectionText) }, fields },
    { type: 'actions', elements: [button] },
    {
      type: 'context',
      elements: [
        {
          type: 'mrkdwn',
          text: cut(
            `${message.values.emoji} ${message.severity} · \`${message.event.type}\` · ${message.event.time.toISOString()}`,
            LIMITS.contextText,
          ),
        },
      ],
    },
  ];
}

export const createSlackChannel: ChannelFactory<SlackChannelSettings> = (settings, deps) => {
  const target = `slack:${deps.name}`;
  return {
    name: deps.name,
    type: 'slack',
    target,
    tracksIncidents: false,
    async send(message, options) {
      const resolved = expandReferences(settings, deps.lookup, { where: target });
      const url = parseHttpUrl(resolved.webhookUrl, target, 'webhookUrl');
      const title = renderTemplate(deps.templates.slackTitle, message.values) || message.headline;
      // `text` is what notifications and clients without Block Kit show.
      const text = `${message.summary ?? title} ${message.link}`;
      const body = JSON.stringify({ text, blocks: slackBlocks(message, title) });
      const answer = await postBody(url, body, {
        target,
        field: 'webhookUrl',
        timeoutMs: resolved.timeoutMs ?? deps.timeoutMs,
        signal: options?.signal,
      });
      if (answer.status !== 200 || answer.body.trim() !== 'ok') {
        throw new ChannelError(
          `${target}: Slack answered HTTP ${answer.status}: ${answerExcerpt(answer.body) || '(empty body)'}`,
        );
      }
      return { detail: 'Slack answered ok' };
    },
  };
};

import type { ChannelSettings, ChannelType } from '../settings.js';
import { createAlertmanagerChannel } from './alertmanager.js';
import { createEmailChannel } from './email.js';
import { createPagerDutyChannel } from './pagerduty.js';
import { createSlackChannel } from './slack.js';
import { createStatusChannel } from './status.js';
import type { ChannelDependencies, ChannelFactory, NotificationChannel } from './types.js';
import { createWebhookChannel } from './webhook.js';

/**
 * The channel kinds, one factory each. Adding a kind: a settings schema in settings.ts (added to
 * the `channel` union), a file here exporting its factory, and an entry in this table.
 */
export const CHANNEL_FACTORIES: {
  [T in ChannelType]: ChannelFactory<Extract<ChannelSettings, { type: T }>>;
} = {
  slack: createSlackChannel,
  email: createEmailChannel,
  pagerduty: createPagerDutyChannel,
  alertmanager: createAlertmanagerChannel,
  webhook: createWebhookChannel,
  status: createStatusChannel,
};

/** Builds the channel a settings entry describes. No secret is resolved until it sends. */
export function createChannel(
  settings: ChannelSettings,
  dependencies: ChannelDependencies,
): NotificationChannel {
  const factory = CHANNEL_FACTORIES[settings.type] as ChannelFactory;
  return factory(settings, dependencies);
}

export { createAlertmanagerChannel, type PostableAlert } from './alertmanager.js';
export { createEmailChannel, emailHtml, emailText } from './email.js';
export { createPagerDutyChannel, pagerDutyTrigger } from './pagerduty.js';
export { createSlackChannel, escapeMrkdwn, slackBlocks, summaryFields } from './slack.js';
export { createStatusChannel } from './status.js';
export * from './types.js';
export { createWebhookChannel, signBody, webhookBody } from './webhook.js';

import { matchesEventPattern } from '../../events/catalog.js';
import type { NotificationMessage } from './notification.js';
import type { NotifierSettings, RouteSettings } from './settings.js';

/** Whether a route selects a message: an event pattern matches, and the environment and severity are allowed. */
export function routeMatches(route: RouteSettings, message: NotificationMessage): boolean {
  if (!route.events.some((pattern) => matchesEventPattern(pattern, message.event.type))) return false;
  if (route.environments && !route.environments.includes(message.environment)) return false;
  if (route.severities && !route.severities.includes(message.severity)) return false;
  return true;
}

/**
 * The channels a message goes to: the union of the channels of every matching route, each once,
 * in the order the routes name them. The notifier's own `notification:sent` events are never
 * routed, whatever the patterns say, so a catch-all route cannot make it notify about itself.
 */
export function routeNotification(
  message: NotificationMessage,
  settings: Pick<NotifierSettings, 'routes'>,
): string[] {
  if (message.event.type === 'notification:sent') return [];
  const channels = new Set<string>();
  for (const route of settings.routes) {
    if (routeMatches(route, message)) for (const name of route.channels) channels.add(name);
  }
  return [...channels];
}

/**
 * Event types (or patterns) the notifier group should read for these settings: every routed
 * pattern, plus the events it needs whatever the routes say — `deployment:started` (to remember
 * a deployment's environment and services for later events) and `deployment:completed` (a
 * success resolves open PagerDuty/Alertmanager incidents).
 */
export function notifierEventTypes(settings: Pick<NotifierSettings, 'routes'>): string[] {
  const types = new Set<string>(['deployment:started', 'deployment:completed']);
  for (const route of settings.routes) for (const pattern of route.events) types.add(pattern);
  if (types.has('**')) return ['**'];
  types.delete('notification:sent');
  return [...types];
}

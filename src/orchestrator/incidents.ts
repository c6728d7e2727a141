import type { Kysely } from 'kysely';
import type { HandlerRegistration } from '../bus/router.js';
import type { DeploymentEvent } from '../events/envelope.js';
import type { Database } from '../store/index.js';
import {
  buildNotification,
  type NotificationMessage,
  type NotifierSettings,
  routeNotification,
} from '../workers/notifier/index.js';

/**
 * Stop the line: an open CRITICAL incident that the notifier raised for an environment freezes
 * it, like a freeze window, until the incident is resolved.
 *
 * The notifier may run in another process and keeps its open incidents in its own state (Redis
 * or memory), so the orchestrator does not ask it. It derives the same incidents from the events
 * that make the notifier open and resolve them, applying the notifier's own code to them
 * (`buildNotification` reads an event as the notifier does, `routeNotification` routes it with
 * the notifier's settings):
 * - an event the notifier reads as a CRITICAL `trigger` (a failed deployment or rollback, a
 *   rollback started or done) and routes to an incident channel (PagerDuty, Alertmanager) opens
 *   an incident for the deployment's (project, environment);
 * - an event it reads as `resolve` — a successful `deployment:completed` — resolves every open
 *   incident of that (project, environment), as the notifier resolves its whole scope.
 *
 * Without notifier settings (no `MATERI_NOTIFIER_CONFIG`) the notifier raises no incidents, and
 * neither does this. Open incidents live in the store (`orchestrator_incidents`), maintained by a
 * handler in the orchestrator's consumer group, so every orchestrator instance sees them.
 *
 * @module
 */

/** Channel types whose channels track incidents (`tracksIncidents` in src/workers/notifier/channels). */
export const INCIDENT_CHANNEL_TYPES: readonly string[] = ['pagerduty', 'alertmanager'];

/** The events that open or resolve incidents (what the notifier reads as `trigger` or `resolve` for a deployment). */
export const INCIDENT_EVENT_TYPES = [
  'deployment:failed',
  'deployment:completed',
  'rollback:initiated',
  'rollback:completed',
] as const;

/** What {@link recordIncidentEvent} needs of the notifier's settings. */
export type IncidentRules = Pick<NotifierSettings, 'routes' | 'channels' | 'dashboardUrl'>;

/** An open incident that freezes an environment. */
export interface EnvironmentIncident {
  project: string;
  environment: string;
  /** The deployment whose event opened it. */
  deploymentId: string;
  /** One line: the notifier's headline and reason, e.g. `Deployment failed at stage api: exit 3`. */
  summary: string;
  eventType: string;
  openedAt: Date;
}

/** Whether the notifier would page an incident channel for this message. */
function pagesIncident(message: NotificationMessage, rules: IncidentRules): boolean {
  if (message.incident !== 'trigger' || message.severity !== 'critical') return false;
  return routeNotification(message, rules).some((name) =>
    INCIDENT_CHANNEL_TYPES.includes(rules.channels[name]?.type ?? ''),
  );
}

function oneLine(text: string, max = 300): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 3)}...` : flat;
}

/**
 * Applies one lifecycle event to the open incidents: opens one (per deployment, re-triggering an
 * open one changes nothing) or resolves those of its environment. Idempotent, and safe when
 * events of different streams arrive out of order: a trigger older than the environment's last
 * success is ignored, and a success resolves only incidents opened before it.
 */
export async function recordIncidentEvent(
  db: Kysely<Database>,
  rules: IncidentRules,
  event: DeploymentEvent,
): Promise<void> {
  const deploymentId =
    event.deploymentId || ((event.data as { deploymentId?: string } | undefined)?.deploymentId ?? '');
  const row = deploymentId
    ? await db
        .selectFrom('orchestrator_deployments')
        .select(['project', 'environment'])
        .where('id', '=', deploymentId)
        .executeTakeFirst()
    : undefined;
  const message = buildNotification(event, {
    dashboardUrl: rules.dashboardUrl,
    facts: row ? { project: row.project, environment: row.environment } : undefined,
  });
  const { project, environment } = message;
  if (!project || !environment) return;
  const at = event.time.getTime();
  if (message.incident === 'resolve') {
    await db
      .updateTable('orchestrator_incidents')
      .set({ resolved_at: at, resolved_by: deploymentId })
      .where('project', '=', project)
      .where('environment', '=', environment)
      .where('resolved_at', 'is', null)
      .where('opened_at', '<=', at)
      .execute();
    return;
  }
  if (!pagesIncident(message, rules)) return;
  const later = await db
    .selectFrom('orchestrator_deployments')
    .select('id')
    .where('project', '=', project)
    .where('environment', '=', environment)
    .where('status', '=', 'SUCCESS')
    .where('finished_at', '>', at)
    .executeTakeFirst();
  if (later) return;
  const summary = oneLine(
    message.problem?.reason && message.problem.reason !== message.headline
      ? `${message.headline}: ${message.problem.reason}`
      : message.headline,
  );
  const opened = {
    deployment_id: deploymentId,
    event_id: event.id,
    event_type: event.type,
    summary,
    opened_at: at,
    resolved_at: null,
    resolved_by: null,
  };
  await db
    .insertInto('orchestrator_incidents')
    .values({ key: `${project}:${environment}:${deploymentId}`, project, environment, ...opened })
    .onConflict((oc) =>
      oc
        .column('key')
        .doUpdateSet(opened)
        .where('orchestrator_incidents.resolved_at', 'is not', null)
        .where('orchestrator_incidents.resolved_at', '<', at),
    )
    .execute();
}

/** The oldest open incident of an environment, if any. */
export async function openIncident(
  db: Kysely<Database>,
  project: string,
  environment: string,
): Promise<EnvironmentIncident | undefined> {
  const row = await db
    .selectFrom('orchestrator_incidents')
    .selectAll()
    .where('project', '=', project)
    .where('environment', '=', environment)
    .where('resolved_at', 'is', null)
    .orderBy('opened_at', 'asc')
    .limit(1)
    .executeTakeFirst();
  if (!row) return undefined;
  return {
    project: row.project,
    environment: row.environment,
    deploymentId: row.deployment_id,
    summary: row.summary,
    eventType: row.event_type,
    openedAt: new Date(Number(row.opened_at)),
  };
}

/**
 * The router registration of the incident tracker: handler `orchestrator-incidents` in the
 * orchestrator's group, on the events of {@link INCIDENT_EVENT_TYPES}. A new group starts at the
 * streams' end: incidents from before the first start are not replayed.
 */
export function incidentRegistration(
  db: Kysely<Database>,
  rules: IncidentRules,
  options: Pick<HandlerRegistration, 'group'> & Partial<Pick<HandlerRegistration, 'claimIdleMs'>>,
): HandlerRegistration {
  return {
    name: 'orchestrator-incidents',
    group: options.group,
    types: [...INCIDENT_EVENT_TYPES],
    concurrency: 1,
    startFrom: 'latest',
    ...(options.claimIdleMs === undefined ? {} : { claimIdleMs: options.claimIdleMs }),
    handler: (event) => recordIncidentEvent(db, rules, event),
  };
}

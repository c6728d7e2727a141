import { timestampDate } from '@bufbuild/protobuf/wkt';
import type { DeploymentEvent } from '../../events/envelope.js';
import {
  type AlertRaisedEvent,
  type ApprovalCompletedEvent,
  ApprovalOutcome,
  type ApprovalRequestedEvent,
  CheckStatus,
  type DependencyCheckCompletedEvent,
  DependencyCheckResult,
  type DeploymentCompletedEvent,
  type DeploymentFailedEvent,
  type DeploymentStageCompletedEvent,
  type DeploymentStageStartedEvent,
  type DeploymentStartedEvent,
  DeploymentStatus,
  ExecutionStatus,
  type HealthCheckCompletedEvent,
  HealthCheckPurpose,
  HealthStatus,
  type RollbackCompletedEvent,
  type RollbackInitiatedEvent,
  type StageResult,
  type ValidationCompletedEvent,
  ValidationResult,
} from '../../events/index.js';
import type { Severity } from './settings.js';
import type { TemplateValues } from './templates.js';

/**
 * What the notifier says about one event, independent of the channel: severity, headline, the
 * deployment it concerns, what failed, a link to Shield, and what it means for incidents. Every
 * channel renders its own format from this.
 *
 * @module
 */

/** Where in a deployment's life the event sits; picks the emoji and the status channel's wording. */
export type NotificationPhase =
  | 'started'
  | 'succeeded'
  | 'failed'
  | 'cancelled'
  | 'rolling-back'
  | 'rolled-back'
  | 'warning'
  | 'info'
  | 'waiting'
  | 'alert-firing'
  | 'alert-resolved';

/**
 * What an event means for incident channels (PagerDuty, Alertmanager): open or update incidents,
 * close the open ones, or nothing.
 */
export type IncidentAction = 'trigger' | 'resolve' | 'none';

/** One incident an event opens or closes: one per service of the deployment, or one per bus alert. */
export interface IncidentTarget {
  /** `materi:<project>:<environment>:<service>` (bus alerts: `materi:bus:<group>:<alert>`). */
  key: string;
  /** The service (bus alerts: the consumer group). */
  component: string;
  /** Prometheus labels besides `alertname`: environment, project, service, severity (alerts: group, severity). */
  labels: Record<string, string>;
}

/** What went wrong, for failure messages. */
export interface NotificationProblem {
  reason: string;
  stage?: string;
  gate?: string;
  /** The failing check, e.g. `image:api`, `health:api`, `dependency:postgres-main`. */
  check?: string;
  details?: string;
}

/** Facts about a deployment that later events do not repeat (health results carry no environment). */
export interface DeploymentFacts {
  project?: string;
  environment?: string;
  version?: string;
  previousVersion?: string;
  services?: string[];
}

export interface NotificationMessage {
  /** The event notified about (the webhook channel posts it as is). */
  event: DeploymentEvent;
  severity: Severity;
  phase: NotificationPhase;
  incident: IncidentAction;
  /** Where open incidents of this event are kept: `<project>:<environment>`, or `bus:<group>`. */
  incidentScope: string;
  /** The incidents a trigger opens, or (for a bus alert) the one a resolve closes. */
  incidentTargets: IncidentTarget[];
  deploymentId: string;
  project: string;
  environment: string;
  version: string;
  services: string[];
  /** Short upper-case status: SUCCESS, FAILED, ROLLED_BACK, DEGRADED, FIRING, … */
  status: string;
  /** One sentence: `Deployment failed at stage railway`. */
  headline: string;
  /**
   * The whole story in one line, when the headline and subject do not tell it (a wait for
   * approval: who may answer, until when, why). Channels show it under the headline.
   */
  summary?: string;
  /** What it is about: `materi v1.4.2 to production`. */
  subject: string;
  problem?: NotificationProblem;
  /** The Shield page: `<dashboardUrl>/deployments/<id>` (bus alerts: the dashboard). */
  link: string;
  /** Further facts worth showing, in order: `[label, value]`. */
  details: [string, string][];
  /** Values for `{{field}}` templates. */
  values: TemplateValues;
}

/** What {@link buildNotification} needs from the settings. */
export interface NotificationContext {
  dashboardUrl: string;
  /** Facts remembered from earlier events of the same deployment. */
  facts?: DeploymentFacts;
}

const EMOJI: Record<NotificationPhase, string> = {
  started: ':rocket:',
  succeeded: ':white_check_mark:',
  failed: ':x:',
  cancelled: ':no_entry_sign:',
  'rolling-back': ':rewind:',
  'rolled-back': ':leftwards_arrow_with_hook:',
  warning: ':warning:',
  info: ':information_source:',
  waiting: ':raised_hand:',
  'alert-firing': ':rotating_light:',
  'alert-resolved': ':white_check_mark:',
};

/** The part of a notification that depends on the event type. */
interface Reading {
  severity: Severity;
  phase: NotificationPhase;
  incident: IncidentAction;
  status: string;
  headline: string;
  problem?: NotificationProblem;
  details?: [string, string][];
  /** Services the event names (overrides remembered facts). */
  services?: string[];
  /** See {@link NotificationMessage.summary}; `{subject}` stands for the subject. */
  summary?: string;
  /** Template values the event gives outside of a problem (an approval's gate and reason). */
  values?: Partial<Pick<TemplateValues, 'gate' | 'reason'>>;
  /** Where a person acts on it, when the event names its own page. */
  link?: string;
}

type Data = Record<string, unknown>;

function enumName(names: Record<number, string>, value: number, prefix: string): string {
  return (names[value] ?? 'UNSPECIFIED').replace(prefix, '');
}

const deploymentStatus = (s: DeploymentStatus) => enumName(DeploymentStatus, s, 'DEPLOYMENT_STATUS_');

/** `1m 05s`, `850 ms`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m ${String(s % 60).padStart(2, '0')}s` : `${Math.floor(m / 60)}h ${m % 60}m`;
}

function failedStage(results: readonly StageResult[]): StageResult | undefined {
  return results.find((r) => r.status === DeploymentStatus.FAILURE);
}

function readStarted(d: DeploymentStartedEvent): Reading {
  const details: [string, string][] = [];
  if (d.strategy) details.push(['Strategy', d.strategy]);
  if (d.previousVersion) details.push(['Previous version', d.previousVersion]);
  if (d.triggeredBy) details.push(['Triggered by', d.triggeredBy]);
  if (d.stages.length > 0) details.push(['Stages', d.stages.join(', ')]);
  return {
    severity: 'info',
    phase: 'started',
    incident: 'none',
    status: 'STARTED',
    headline: 'Deployment started',
    details,
    services: d.services,
  };
}

function readCompleted(d: DeploymentCompletedEvent): Reading {
  const details: [string, string][] = [];
  if (d.totalDurationMs > 0) details.push(['Duration', formatDuration(d.totalDurationMs)]);
  if (d.stageResults.length > 0) {
    const ok = d.stageResults.filter((r) => r.status === DeploymentStatus.SUCCESS).length;
    details.push(['Stages', `${ok}/${d.stageResults.length} succeeded`]);
  }
  const base = { details, services: d.services, status: deploymentStatus(d.status) };
  switch (d.status) {
    case DeploymentStatus.SUCCESS:
      return {
        ...base,
        severity: 'info',
        phase: 'succeeded',
        incident: 'resolve',
        headline: 'Deployment succeeded',
      };
    case DeploymentStatus.FAILURE: {
      const stage = failedStage(d.stageResults);
      return {
        ...base,
        severity: 'critical',
        phase: 'failed',
        incident: 'trigger',
        headline: stage ? `Deployment failed at stage ${stage.stage}` : 'Deployment failed',
        problem: stage
          ? {
              reason: `stage ${stage.stage} failed`,
              stage: stage.stage,
              details: stage.errorMessage || undefined,
            }
          : undefined,
      };
    }
    case DeploymentStatus.ROLLED_BACK: {
      const stage = failedStage(d.stageResults);
      return {
        ...base,
        severity: 'critical',
        phase: 'rolled-back',
        incident: 'trigger',
        headline: 'Deployment rolled back',
        problem: stage
          ? {
              reason: `stage ${stage.stage} failed`,
              stage: stage.stage,
              details: stage.errorMessage || undefined,
            }
          : undefined,
      };
    }
    case DeploymentStatus.CANCELLED:
      return {
        ...base,
        severity: 'warning',
        phase: 'cancelled',
        incident: 'none',
        headline: 'Deployment cancelled',
      };
    default:
      return {
        ...base,
        severity: 'info',
        phase: 'info',
        incident: 'none',
        headline: `Deployment ${base.status.toLowerCase()}`,
      };
  }
}

function readFailed(d: DeploymentFailedEvent): Reading {
  const headline = d.failedStage
    ? `Deployment failed at stage ${d.failedStage}`
    : d.failedGate
      ? `Deployment failed at the ${d.failedGate} gate`
      : 'Deployment failed';
  return {
    severity: 'critical',
    phase: 'failed',
    incident: 'trigger',
    status: 'FAILED',
    headline,
    problem: {
      reason: d.reason || headline,
      stage: d.failedStage || undefined,
      gate: d.failedGate || undefined,
      details: d.errorDetails || undefined,
    },
  };
}

function readRollbackInitiated(d: RollbackInitiatedEvent): Reading {
  const details: [string, string][] = [];
  if (d.previousVersion) details.push(['Restoring', d.previousVersion]);
  if (d.stagesToRollback.length > 0) details.push(['Stages to roll back', d.stagesToRollback.join(', ')]);
  return {
    severity: 'critical',
    phase: 'rolling-back',
    incident: 'trigger',
    status: 'ROLLING_BACK',
    headline: d.previousVersion ? `Rolling back to ${d.previousVersion}` : 'Rollback started',
    problem: d.reason ? { reason: d.reason } : undefined,
    details,
  };
}

function readRollbackCompleted(d: RollbackCompletedEvent): Reading {
  const details: [string, string][] = [];
  if (d.durationMs > 0) details.push(['Rollback took', formatDuration(d.durationMs)]);
  const services = d.rolledBackServices.length > 0 ? d.rolledBackServices : undefined;
  if (d.status === DeploymentStatus.SUCCESS) {
    return {
      severity: 'critical',
      phase: 'rolled-back',
      incident: 'trigger',
      status: 'ROLLED_BACK',
      headline: d.restoredVersion ? `Rolled back to ${d.restoredVersion}` : 'Rolled back',
      details,
      services,
    };
  }
  return {
    severity: 'critical',
    phase: 'failed',
    incident: 'trigger',
    status: 'ROLLBACK_FAILED',
    headline: 'Rollback failed',
    problem: { reason: d.errorMessage || 'rollback failed' },
    details,
    services,
  };
}

function notRun(execution: ExecutionStatus): boolean {
  return execution === ExecutionStatus.ERRORED || execution === ExecutionStatus.TIMED_OUT;
}

function readHealth(d: HealthCheckCompletedEvent): Reading {
  const bake = d.purpose === HealthCheckPurpose.BAKE ? 'Bake health check' : 'Health check';
  const status = enumName(HealthStatus, d.status, 'HEALTH_STATUS_');
  const worst = [...d.services].sort((a, b) => rankHealth(b.status) - rankHealth(a.status))[0];
  const problem: NotificationProblem | undefined =
    worst && worst.status !== HealthStatus.HEALTHY
      ? { reason: d.reason || worst.message || status.toLowerCase(), check: `health:${worst.service}` }
      : d.reason && d.status !== HealthStatus.HEALTHY
        ? { reason: d.reason }
        : undefined;
  const details: [string, string][] = d.services.map((s) => [
    s.service,
    `${enumName(HealthStatus, s.status, 'HEALTH_STATUS_')}, p95 ${Math.round(s.responseTimeP95Ms)} ms, errors ${(s.errorRate * 100).toFixed(1)}%`,
  ]);
  const services = d.services.map((s) => s.service);
  if (notRun(d.executionStatus)) {
    const execution = enumName(ExecutionStatus, d.executionStatus, 'EXECUTION_STATUS_');
    return {
      severity: 'critical',
      phase: 'failed',
      incident: 'none',
      status: execution,
      headline: `${bake} could not run`,
      problem: { reason: d.reason || execution.toLowerCase() },
      details,
      services,
    };
  }
  const by: Record<number, [Severity, NotificationPhase, string]> = {
    [HealthStatus.HEALTHY]: ['info', 'info', `${bake} passed`],
    [HealthStatus.DEGRADED]: ['warning', 'warning', `${bake}: services degraded`],
    [HealthStatus.UNHEALTHY]: ['critical', 'failed', `${bake}: services unhealthy`],
    [HealthStatus.INCONCLUSIVE]: ['warning', 'warning', `${bake} inconclusive`],
  };
  const [severity, phase, headline] = by[d.status] ?? ['info', 'info', `${bake} finished`];
  return { severity, phase, incident: 'none', status, headline, problem, details, services };
}

function rankHealth(status: HealthStatus): number {
  return [
    HealthStatus.HEALTHY,
    HealthStatus.INCONCLUSIVE,
    HealthStatus.DEGRADED,
    HealthStatus.UNHEALTHY,
  ].indexOf(status);
}

function readValidation(d: ValidationCompletedEvent): Reading {
  const failing =
    d.checks.find((c) => c.status === CheckStatus.FAILED) ??
    d.checks.find((c) => c.status === CheckStatus.WARNING);
  const problem = failing ? { reason: failing.message || failing.name, check: failing.name } : undefined;
  const passed = d.checks.filter((c) => c.status === CheckStatus.PASSED).length;
  const details: [string, string][] =
    d.checks.length > 0 ? [['Checks', `${passed}/${d.checks.length} passed`]] : [];
  if (notRun(d.executionStatus)) {
    const execution = enumName(ExecutionStatus, d.executionStatus, 'EXECUTION_STATUS_');
    return {
      severity: 'critical',
      phase: 'failed',
      incident: 'none',
      status: execution,
      headline: 'Validation could not run',
      problem: { reason: d.message || execution.toLowerCase() },
      details,
    };
  }
  const status = enumName(ValidationResult, d.result, 'VALIDATION_RESULT_');
  switch (d.result) {
    case ValidationResult.PASSED:
      return {
        severity: 'info',
        phase: 'info',
        incident: 'none',
        status,
        headline: 'Validation passed',
        details,
      };
    case ValidationResult.WARNINGS:
      return {
        severity: 'warning',
        phase: 'warning',
        incident: 'none',
        status,
        headline: 'Validation passed with warnings',
        problem,
        details,
      };
    default:
      return {
        severity: 'critical',
        phase: 'failed',
        incident: 'none',
        status,
        headline: 'Validation failed',
        problem: problem ?? (d.message ? { reason: d.message } : undefined),
        details,
      };
  }
}

function readDependencies(d: DependencyCheckCompletedEvent): Reading {
  const unhealthy = d.dependencies
    .filter((x) => !x.healthy)
    .sort((a, b) => Number(b.critical) - Number(a.critical));
  const first = unhealthy[0];
  const problem = first
    ? { reason: first.message || `${first.name} unhealthy`, check: `dependency:${first.name}` }
    : undefined;
  const details: [string, string][] =
    unhealthy.length > 0 ? [['Unhealthy', unhealthy.map((x) => x.name).join(', ')]] : [];
  if (notRun(d.executionStatus)) {
    const execution = enumName(ExecutionStatus, d.executionStatus, 'EXECUTION_STATUS_');
    return {
      severity: 'critical',
      phase: 'failed',
      incident: 'none',
      status: execution,
      headline: 'Dependency check could not run',
      problem: { reason: d.message || execution.toLowerCase() },
    };
  }
  const status = enumName(DependencyCheckResult, d.result, 'DEPENDENCY_CHECK_RESULT_');
  const by: Record<number, [Severity, NotificationPhase, string]> = {
    [DependencyCheckResult.ALL_HEALTHY]: ['info', 'info', 'Dependencies healthy'],
    [DependencyCheckResult.SOME_DEGRADED]: ['warning', 'warning', 'Some dependencies degraded'],
    [DependencyCheckResult.ALL_UNHEALTHY]: ['critical', 'failed', 'Dependencies unhealthy'],
  };
  const [severity, phase, headline] = by[d.result] ?? ['info', 'info', 'Dependency check finished'];
  return { severity, phase, incident: 'none', status, headline, problem, details };
}

function readStageStarted(d: DeploymentStageStartedEvent): Reading {
  const details: [string, string][] = [];
  if (d.provider) details.push(['Provider', d.provider]);
  if (d.description) details.push(['Stage', d.description]);
  return {
    severity: 'info',
    phase: 'info',
    incident: 'none',
    status: 'RUNNING',
    headline: `Stage ${d.stage} started`,
    details,
    services: d.services.length > 0 ? d.services : undefined,
  };
}

function readStageCompleted(d: DeploymentStageCompletedEvent): Reading {
  const status = deploymentStatus(d.status);
  const details: [string, string][] = d.durationMs > 0 ? [['Duration', formatDuration(d.durationMs)]] : [];
  const services = d.services.length > 0 ? d.services : undefined;
  if (d.status === DeploymentStatus.FAILURE) {
    return {
      severity: 'critical',
      phase: 'failed',
      incident: 'none',
      status,
      headline: `Stage ${d.stage} failed`,
      problem: { reason: d.errorMessage || `stage ${d.stage} failed`, stage: d.stage },
      details,
      services,
    };
  }
  const ok = d.status === DeploymentStatus.SUCCESS;
  return {
    severity: ok ? 'info' : 'warning',
    phase: ok ? 'info' : 'warning',
    incident: 'none',
    status,
    headline: `Stage ${d.stage} ${ok ? 'succeeded' : status.toLowerCase().replace('_', ' ')}`,
    details,
    services,
  };
}

function readAlert(d: AlertRaisedEvent): Reading {
  const severity: Severity = d.resolved ? 'info' : d.severity === 'critical' ? 'critical' : 'warning';
  return {
    severity,
    phase: d.resolved ? 'alert-resolved' : 'alert-firing',
    incident: d.resolved ? 'resolve' : 'trigger',
    status: d.resolved ? 'RESOLVED' : 'FIRING',
    headline: `${d.alert} ${d.resolved ? 'resolved' : 'firing'}`,
    problem: { reason: d.summary || `${d.alert} crossed ${d.threshold}` },
    details: [
      ['Value', String(d.value)],
      ['Threshold', String(d.threshold)],
      ['Alert severity', d.severity || 'warning'],
    ],
  };
}

/** `2026-03-01 11:00 UTC`: deadlines are read by people in several time zones. */
function formatDeadline(d: ApprovalRequestedEvent): string {
  if (!d.deadline) return 'no deadline';
  return `${timestampDate(d.deadline).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** An http(s) URL, or undefined (a link must never become `javascript:` in an e-mail). */
function httpUrl(value: string): string | undefined {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined;
  } catch {
    return undefined;
  }
}

function readApprovalRequested(d: ApprovalRequestedEvent): Reading {
  const approvers = d.approvers || 'any operator';
  const deadline = formatDeadline(d);
  const details: [string, string][] = [
    ['Gate', d.gate],
    ['Approvers', approvers],
    ['Deadline', deadline],
  ];
  return {
    severity: 'warning',
    phase: 'waiting',
    incident: 'none',
    status: 'WAITING_FOR_APPROVAL',
    headline: `Waits for approval (${d.gate})`,
    summary: `{subject} waits for approval (${d.gate}) by ${approvers} until ${deadline}${d.reason ? `: ${d.reason}` : ''}`,
    details,
    values: { gate: d.gate, reason: d.reason },
    link: httpUrl(d.url),
  };
}

function readApprovalCompleted(d: ApprovalCompletedEvent): Reading {
  const by = d.by || 'nobody';
  const [severity, phase, status, headline]: [Severity, NotificationPhase, string, string] =
    d.outcome === ApprovalOutcome.APPROVED
      ? ['info', 'info', 'APPROVED', `Approved by ${by}`]
      : d.outcome === ApprovalOutcome.REJECTED
        ? ['warning', 'warning', 'REJECTED', `Rejected by ${by}`]
        : d.outcome === ApprovalOutcome.EXPIRED
          ? ['warning', 'warning', 'EXPIRED', 'Approval expired: nobody answered before the deadline']
          : ['info', 'info', 'ANSWERED', 'Approval answered'];
  const verb = status === 'EXPIRED' ? 'expired' : `${status.toLowerCase()} by ${by}`;
  const details: [string, string][] = [['Gate', d.gate]];
  if (d.by) details.push(['By', d.by]);
  if (d.comment) details.push(['Comment', d.comment]);
  return {
    severity,
    phase,
    incident: 'none',
    status,
    headline,
    summary: `{subject}: approval of ${d.gate} ${verb}${d.comment ? `: ${d.comment}` : ''}`,
    details,
    values: { gate: d.gate, reason: d.comment },
  };
}

function read(event: DeploymentEvent): Reading {
  const data = event.data as never;
  switch (event.type) {
    case 'deployment:started':
      return readStarted(data);
    case 'deployment:completed':
      return readCompleted(data);
    case 'deployment:failed':
      return readFailed(data);
    case 'rollback:initiated':
      return readRollbackInitiated(data);
    case 'rollback:completed':
      return readRollbackCompleted(data);
    case 'health:check:completed':
      return readHealth(data);
    case 'validation:completed':
      return readValidation(data);
    case 'dependency:check:completed':
      return readDependencies(data);
    case 'alert:raised':
      return readAlert(data);
    case 'approval:requested':
      return readApprovalRequested(data);
    case 'approval:completed':
      return readApprovalCompleted(data);
  }
  if (/^deployment:stage:[^:]+:started$/.test(event.type)) return readStageStarted(data);
  if (/^deployment:stage:[^:]+:completed$/.test(event.type)) return readStageCompleted(data);
  return {
    severity: 'info',
    phase: 'info',
    incident: 'none',
    status: 'INFO',
    headline: `Event ${event.type}`,
  };
}

function text(data: Data, key: string): string | undefined {
  const value = data[key];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The deployment facts an event carries itself (empty fields left out). */
export function factsFromEvent(event: DeploymentEvent): DeploymentFacts {
  const data = (event.data ?? {}) as Data;
  const facts: DeploymentFacts = {};
  const project = text(data, 'project');
  const environment = text(data, 'environment');
  const version = text(data, 'version');
  const previousVersion = event.type === 'deployment:started' ? text(data, 'previousVersion') : undefined;
  if (project) facts.project = project;
  if (environment) facts.environment = environment;
  if (version) facts.version = version;
  if (previousVersion) facts.previousVersion = previousVersion;
  if (
    (event.type === 'deployment:started' || event.type === 'deployment:completed') &&
    Array.isArray(data.services)
  ) {
    const services = (data.services as unknown[]).filter(
      (s): s is string => typeof s === 'string' && s !== '',
    );
    if (services.length > 0) facts.services = services;
  }
  return facts;
}

/** Whether an event leaves out facts that an earlier event of its deployment may have given. */
export function lacksFacts(event: DeploymentEvent): boolean {
  if (event.type === 'alert:raised') return false;
  const own = factsFromEvent(event);
  return !own.project || !own.environment || !own.version || !own.services;
}

function incidentTargets(
  reading: Reading,
  alert: AlertRaisedEvent | undefined,
  project: string,
  environment: string,
  services: string[],
  severity: Severity,
): IncidentTarget[] {
  if (alert) {
    return [
      {
        key: `materi:bus:${alert.group}:${alert.alert}`,
        component: alert.group,
        labels: { group: alert.group, severity: alert.severity || 'warning' },
      },
    ];
  }
  if (reading.incident !== 'trigger') return [];
  const p = project || 'unknown';
  const e = environment || 'unknown';
  return (services.length > 0 ? services : ['deployment']).map((service) => ({
    key: `materi:${p}:${e}:${service}`,
    component: service,
    labels: { environment: e, project: p, service, severity },
  }));
}

/** `materi v1.4.2 to production`, or `deployment <id>` when nothing else is known. */
function describeSubject(
  project: string,
  version: string,
  environment: string,
  deploymentId: string,
  type: string,
): string {
  const what = [project, version].filter(Boolean).join(' ');
  const where = environment ? `to ${environment}` : '';
  const both = [what, where].filter(Boolean).join(' ');
  return both || (deploymentId ? `deployment ${deploymentId}` : type);
}

/** Builds the channel-neutral message for an event (any type in the catalog). */
export function buildNotification(event: DeploymentEvent, context: NotificationContext): NotificationMessage {
  const reading = read(event);
  const data = (event.data ?? {}) as Data;
  const facts = { ...context.facts, ...factsFromEvent(event) };
  const alert = event.type === 'alert:raised' ? (event.data as AlertRaisedEvent) : undefined;
  const deploymentId = text(data, 'deploymentId') ?? event.deploymentId;
  // Bus alerts belong to no deployment: show them as `[bus] <group> <alert>` in deployment-shaped templates.
  const project = alert ? alert.group : (facts.project ?? '');
  const environment = alert ? 'bus' : (facts.environment ?? '');
  const version = alert ? alert.alert : (facts.version ?? '');
  const services = reading.services ?? facts.services ?? [];
  const subject = alert
    ? alert.group
    : describeSubject(project, version, environment, deploymentId, event.type);
  const link =
    reading.link ??
    (deploymentId
      ? `${context.dashboardUrl}/deployments/${encodeURIComponent(deploymentId)}`
      : `${context.dashboardUrl}/`);
  // A function, so `$&` in a version name is not a replacement pattern.
  const summary = reading.summary?.replace('{subject}', () => subject);
  const problem = reading.problem;
  const values: TemplateValues = {
    eventType: event.type,
    eventId: event.id,
    deploymentId,
    project,
    environment,
    version,
    previousVersion: facts.previousVersion ?? '',
    status: reading.status,
    severity: reading.severity,
    headline: reading.headline,
    subject,
    summary: summary ?? '',
    reason: problem?.reason ?? reading.values?.reason ?? '',
    stage: problem?.stage ?? '',
    gate: problem?.gate ?? reading.values?.gate ?? '',
    check: problem?.check ?? '',
    details: problem?.details ?? '',
    services: services.join(', '),
    link,
    alert: alert?.alert ?? '',
    group: alert?.group ?? '',
    value: alert ? String(alert.value) : '',
    threshold: alert ? String(alert.threshold) : '',
    emoji: EMOJI[reading.phase],
    time: event.time.toISOString(),
  };
  return {
    event,
    severity: reading.severity,
    phase: reading.phase,
    incident: reading.incident,
    incidentScope: alert ? `bus:${alert.group}` : `${project || 'unknown'}:${environment || 'unknown'}`,
    incidentTargets: incidentTargets(reading, alert, project, environment, services, reading.severity),
    deploymentId,
    project,
    environment,
    version,
    services,
    status: reading.status,
    headline: reading.headline,
    subject,
    ...(summary === undefined ? {} : { summary }),
    problem,
    link,
    details: reading.details ?? [],
    values,
  };
}

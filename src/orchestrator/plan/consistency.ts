import { STAGE_NAME_PATTERN } from '../../events/streams.js';
import { formatDuration } from './duration.js';
import type { PathIssue } from './issues.js';
import { type ParsedPlan, SERVICE_NAME_PATTERN } from './schema.js';

/**
 * Checks the schema cannot express: names are unique and safe for stream keys, references between
 * stages and services resolve, the stage graph has no cycle, every service is deployed, and
 * related settings agree with each other.
 */
export function checkConsistency(plan: ParsedPlan): PathIssue[] {
  const issues: PathIssue[] = [];
  const serviceNames = Object.keys(plan.services);
  const stageIndex = new Map<string, number>();

  for (const name of serviceNames) {
    if (!SERVICE_NAME_PATTERN.test(name))
      issues.push({
        path: ['services', name],
        message: `service name must match [a-z0-9][a-z0-9_-]* (at most 63 characters), got ${JSON.stringify(name)}`,
      });
  }

  plan.stages.forEach((stage, i) => {
    if (!STAGE_NAME_PATTERN.test(stage.name)) {
      issues.push({
        path: ['stages', i, 'name'],
        message: `must match [a-z0-9][a-z0-9_-]* (at most 63 characters), got ${JSON.stringify(stage.name)}`,
      });
    } else if (stageIndex.has(stage.name)) {
      issues.push({
        path: ['stages', i, 'name'],
        message: `duplicate stage name "${stage.name}" (also stages[${stageIndex.get(stage.name)}])`,
      });
    } else {
      stageIndex.set(stage.name, i);
    }
  });

  const deployed = new Set<string>();
  plan.stages.forEach((stage, i) => {
    const seen = new Set<string>();
    stage.services.forEach((service, j) => {
      if (!(service in plan.services)) {
        issues.push({
          path: ['stages', i, 'services', j],
          message: `unknown service "${service}" (declared: ${serviceNames.join(', ')})`,
        });
      } else if (seen.has(service)) {
        issues.push({ path: ['stages', i, 'services', j], message: `service "${service}" is listed twice` });
      }
      seen.add(service);
      deployed.add(service);
    });
    stage.dependsOn.forEach((dependency, j) => {
      if (!stageIndex.has(dependency))
        issues.push({
          path: ['stages', i, 'dependsOn', j],
          message: `unknown stage "${dependency}" (stages: ${[...stageIndex.keys()].join(', ')})`,
        });
    });
    issues.push(...checkProvider(plan, i));
  });

  for (const name of serviceNames) {
    if (!deployed.has(name)) issues.push({ path: ['services', name], message: 'not deployed by any stage' });
  }

  // A cycle is only meaningful once every stage has one unique name.
  const cycle = stageIndex.size === plan.stages.length ? findCycle(plan) : undefined;
  if (cycle) issues.push({ path: ['stages'], message: `cycle ${cycle.join(' -> ')}` });

  for (const [name, service] of Object.entries(plan.services)) {
    issues.push(...duplicateNames(service.dependencies, ['services', name, 'dependencies'], 'dependency'));
  }
  issues.push(...duplicateNames(plan.validation.migrations, ['validation', 'migrations'], 'migration'));
  issues.push(...duplicateNames(plan.validation.discovery, ['validation', 'discovery'], 'discovery check'));

  issues.push(...checkTimings(plan));
  return issues;
}

function checkProvider(plan: ParsedPlan, i: number): PathIssue[] {
  const stage = plan.stages[i]!;
  const provider = stage.provider;
  const at = ['stages', i, 'provider'];
  const issues: PathIssue[] = [];
  if (provider.type === 'railway') {
    for (const service of stage.services) {
      if (!(service in provider.services))
        issues.push({ path: [...at, 'services'], message: `missing the Railway service of "${service}"` });
    }
    for (const service of Object.keys(provider.services)) {
      if (!stage.services.includes(service))
        issues.push({
          path: [...at, 'services', service],
          message: `not a service of this stage (services: ${stage.services.join(', ')})`,
        });
    }
  }
  if (provider.type === 'http') {
    const hooks = [
      { poll: provider.poll, idField: provider.deploy.idField, at: 'poll', hook: 'deploy' },
      {
        poll: provider.rollback?.poll,
        idField: provider.rollback?.idField,
        at: 'rollback.poll',
        hook: 'rollback',
      },
    ];
    for (const { poll, idField, at: where, hook } of hooks) {
      if (poll && !idField && JSON.stringify(poll).includes('${HOOK_ID}'))
        issues.push({
          path: [...at, ...where.split('.')],
          message: `uses \${HOOK_ID} but ${hook}.idField is not set`,
        });
    }
  }
  if (provider.type === 'local') {
    if (stage.services.length !== 1)
      issues.push({
        path: ['stages', i, 'services'],
        message: 'a local stage runs one process, so it deploys exactly one service',
      });
    const other = plan.stages.findIndex(
      (s, j) => j < i && s.provider.type === 'local' && s.provider.port === provider.port,
    );
    if (other >= 0)
      issues.push({
        path: [...at, 'port'],
        message: `port ${provider.port} is also used by stage "${plan.stages[other]!.name}"`,
      });
  }
  return issues;
}

/** The first cycle in the stage graph, as stage names ending where they start; undefined if none. */
export function findCycle(plan: Pick<ParsedPlan, 'stages'>): string[] | undefined {
  const byName = new Map(plan.stages.map((stage) => [stage.name, stage]));
  const state = new Map<string, 'visiting' | 'done'>();
  const trail: string[] = [];

  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === 'done') return undefined;
    if (state.get(name) === 'visiting') return [...trail.slice(trail.indexOf(name)), name];
    state.set(name, 'visiting');
    trail.push(name);
    for (const dependency of byName.get(name)?.dependsOn ?? []) {
      if (!byName.has(dependency)) continue;
      const cycle = visit(dependency);
      if (cycle) return cycle;
    }
    trail.pop();
    state.set(name, 'done');
    return undefined;
  };

  for (const stage of plan.stages) {
    const cycle = visit(stage.name);
    if (cycle) return cycle.reverse();
  }
  return undefined;
}

function duplicateNames(items: { name: string }[], at: PropertyKey[], kind: string): PathIssue[] {
  const seen = new Map<string, number>();
  const issues: PathIssue[] = [];
  items.forEach((item, i) => {
    if (seen.has(item.name))
      issues.push({
        path: [...at, i, 'name'],
        message: `duplicate ${kind} name "${item.name}" (also ${at.join('.')}[${seen.get(item.name)}])`,
      });
    else seen.set(item.name, i);
  });
  return issues;
}

function checkTimings(plan: ParsedPlan): PathIssue[] {
  const issues: PathIssue[] = [];
  const longer = (path: PropertyKey[], value: number, otherName: string, other: number) => {
    if (value <= other)
      issues.push({
        path,
        message: `(${formatDuration(value)}) must be longer than ${otherName} (${formatDuration(other)})`,
      });
  };
  const { validation, dependencies, health } = plan;
  longer(
    ['validation', 'timeout'],
    validation.timeoutMs,
    'validation.checkTimeout',
    validation.checkTimeoutMs,
  );
  longer(
    ['dependencies', 'timeout'],
    dependencies.timeoutMs,
    'dependencies.checkTimeout',
    dependencies.checkTimeoutMs,
  );
  longer(['health', 'duration'], health.durationMs, 'health.interval', health.intervalMs);
  longer(['health', 'timeout'], health.timeoutMs, 'health.duration', health.durationMs);
  if (health.bakeMs > 0) longer(['health', 'timeout'], health.timeoutMs, 'health.bake', health.bakeMs);
  const { errorRate, p95 } = health.thresholds;
  if (errorRate.degraded > errorRate.unhealthy)
    issues.push({
      path: ['health', 'thresholds', 'errorRate', 'degraded'],
      message: `(${errorRate.degraded}) must not exceed errorRate.unhealthy (${errorRate.unhealthy})`,
    });
  if (p95.degraded > p95.unhealthy)
    issues.push({
      path: ['health', 'thresholds', 'p95', 'degraded'],
      message: `(${formatDuration(p95.degraded)}) must not exceed p95.unhealthy (${formatDuration(p95.unhealthy)})`,
    });
  return issues;
}

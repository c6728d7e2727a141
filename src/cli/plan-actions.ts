/**
 * What `materi plan validate` does when it runs; plan.ts registers it.
 *
 * @module
 */
import {
  executionWaves,
  formatDuration,
  loadPlanFile,
  type Plan,
  PlanInvalidError,
  type PlanIssue,
} from '../orchestrator/plan/index.js';
import { parseVars } from './shared.js';

export interface ValidateOptions {
  var: string[];
  env?: string;
  version?: string;
  json?: boolean;
}

/** `materi plan validate <file>`: the summary on stdout, or the problems and exit code 2. */
export async function validate(file: string, options: ValidateOptions): Promise<void> {
  let loaded: Plan;
  try {
    loaded = await loadPlanFile(file, {
      vars: parseVars(options.var),
      environment: options.env,
      version: options.version,
    });
  } catch (error) {
    // The problems go to stdout: all of them with --json, else a list when the one-line
    // error (still on stderr, exit code 2) cannot say them all.
    if (error instanceof PlanInvalidError) {
      if (options.json)
        process.stdout.write(`${JSON.stringify({ valid: false, file, problems: error.issues }, null, 2)}\n`);
      else if (error.issues.length > 1) process.stdout.write(formatProblems(file, error.issues));
    }
    throw error;
  }
  const summary = summarizePlan(loaded);
  process.stdout.write(options.json ? `${JSON.stringify(summary, null, 2)}\n` : formatSummary(file, loaded));
}

/** What `plan validate --json` prints: no setting values, only names, structure and timings. */
export function summarizePlan(plan: Plan) {
  const { waves, rollbackOrder } = executionWaves(plan);
  return {
    valid: true,
    file: plan.source,
    project: plan.project,
    environment: plan.environment,
    strategy: plan.strategy,
    ...(plan.version ? { version: plan.version } : {}),
    waves: waves.map((wave) =>
      wave.map((stage) => ({
        name: stage.name,
        services: stage.services,
        provider: stage.provider.type,
        dependsOn: stage.dependsOn,
        timeoutMs: stage.timeoutMs,
      })),
    ),
    rollbackOrder,
    services: Object.values(plan.services).map((service) => ({
      name: service.name,
      ...(service.image ? { image: service.image } : {}),
      ...(service.health ? { health: service.health } : {}),
      dependencies: service.dependencies.map((d) => d.name),
      requiredEnv: service.env?.required ?? [],
    })),
    gates: {
      validationTimeoutMs: plan.validation.timeoutMs,
      dependencyTimeoutMs: plan.dependencies.timeoutMs,
      healthDurationMs: plan.health.durationMs,
      healthBakeMs: plan.health.bakeMs,
      healthTimeoutMs: plan.health.timeoutMs,
      automaticRollback: plan.rollback.automatic,
    },
    references: plan.references,
  };
}

/** Problems `plan validate` lists without `--json`; `--json` lists every one. */
const LISTED_PROBLEMS = 10;

/** The problems of an invalid plan, one a line with its line number, the first {@link LISTED_PROBLEMS}. */
function formatProblems(file: string, issues: readonly PlanIssue[]): string {
  const count = `${issues.length} problem${issues.length === 1 ? '' : 's'}`;
  const lines = [`${file}: invalid plan, ${count}`];
  const width = Math.max(...issues.map((i) => (i.line === undefined ? 0 : `line ${i.line}`.length))) + 2;
  for (const issue of issues.slice(0, LISTED_PROBLEMS)) {
    const at = issue.line === undefined ? '' : `line ${issue.line}`;
    lines.push(`  ${at.padEnd(width)}${issue.path ? `${issue.path}: ` : ''}${issue.message}`);
  }
  const more = issues.length - LISTED_PROBLEMS;
  if (more > 0) lines.push(`  (and ${more} more problem${more === 1 ? '' : 's'}; --json lists them all)`);
  return `${lines.join('\n')}\n`;
}

function formatSummary(file: string, plan: Plan): string {
  const { waves } = executionWaves(plan);
  const lines = [`${file}: valid plan`];
  const row = (label: string, value: string) => lines.push(`  ${label.padEnd(13)}${value}`);
  row('project', plan.project);
  row('environment', plan.environment);
  row('strategy', plan.strategy);
  if (plan.version) row('version', plan.version);
  row('stages', `${plan.stages.length} in ${waves.length} wave${waves.length === 1 ? '' : 's'}`);
  waves.forEach((wave, i) => {
    wave.forEach((stage, j) => {
      const after = stage.dependsOn.length ? `, after ${stage.dependsOn.join(', ')}` : '';
      const text = `${stage.name} (${stage.services.join(', ')}) via ${stage.provider.type}, timeout ${formatDuration(stage.timeoutMs)}${after}`;
      lines.push(`    ${(j === 0 ? `wave ${i + 1}` : '').padEnd(11)}${text}`);
    });
  });
  row('services', Object.keys(plan.services).join(', '));
  const { health } = plan;
  row(
    'gates',
    `validation ${formatDuration(plan.validation.timeoutMs)}, dependencies ${formatDuration(plan.dependencies.timeoutMs)}, ` +
      `health ${formatDuration(health.durationMs)} window${health.bakeMs ? ` + ${formatDuration(health.bakeMs)} bake` : ''}, ` +
      `rollback ${plan.rollback.automatic ? 'automatic' : 'manual'}`,
  );
  if (plan.references.length === 0) {
    lines.push('  environment variables referenced: none');
  } else {
    lines.push('  environment variables referenced (resolved where used; events carry only the names):');
    const width = Math.max(...plan.references.map((r) => r.name.length)) + 2;
    for (const reference of plan.references)
      lines.push(`    ${reference.name.padEnd(width)}${reference.paths.join(', ')}`);
  }
  const required = Object.values(plan.services).filter((s) => s.env && s.env.required.length > 0);
  if (required.length > 0) {
    lines.push('  environment variables the services require (checked by the validator):');
    for (const service of required)
      lines.push(
        `    ${service.name.padEnd(12)}${service.env!.required.join(', ')} (source: ${service.env!.source.type})`,
      );
  }
  return `${lines.join('\n')}\n`;
}

import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { type Document, isNode, LineCounter, parseDocument } from 'yaml';
import { BadInputError, describeCause } from '../../errors/index.js';
import { expandReferences, findReferences } from '../../runtime/references.js';
import { checkConsistency } from './consistency.js';
import { PlanInvalidError, type PlanIssue } from './errors.js';
import { type DocumentPath, describeZodIssue, formatPath, type PathIssue, sortByLine } from './issues.js';
import { planSchema, VAR_NAME } from './schema.js';
import type { Plan, PlanReference, PlanService } from './types.js';

/** Options of {@link parsePlan} and {@link loadPlanFile}. */
export interface PlanLoadOptions {
  /** `--var k=v` values, expanded as `${k}` when the plan is loaded; they override the plan's `vars`. */
  vars?: Record<string, string>;
  /**
   * The version to deploy, expanded as `${VERSION}`. Inside `stages[].provider` `${VERSION}` is kept:
   * there it means the version an action installs (the new one on deploy, the previous one on
   * rollback) and the provider expands it. Without a version, `${VERSION}` stays as written.
   */
  version?: string;
  /** Overrides the plan's `environment`; expanded as `${ENVIRONMENT}`. */
  environment?: string;
  /** Expanded as `${DEPLOYMENT_ID}`. */
  deploymentId?: string;
  /** Directory for relative paths in provider settings. @defaultValue the plan file's directory, or the current directory for `parsePlan` */
  baseDir?: string;
}

/** Names set by Materi itself; a `--var` cannot set them. */
export const RESERVED_VARIABLES = [
  'VERSION',
  'PREVIOUS_VERSION',
  'ENVIRONMENT',
  'PROJECT',
  'DEPLOYMENT_ID',
  'STAGE',
  'PORT',
  'HOOK_ID',
] as const;

/** Versions are used in image tags and commands, so they are limited to a tag-safe alphabet. */
export const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Reads and loads a plan file; errors name the file. See {@link parsePlan}. */
export async function loadPlanFile(path: string, options: PlanLoadOptions = {}): Promise<Plan> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new PlanInvalidError(path, [
      { path: '', message: `cannot read the plan: ${describeCause(error)}` },
    ]);
  }
  return parsePlan(text, path, { baseDir: dirname(resolve(path)), ...options });
}

/**
 * Parses plan text (YAML): syntax, load-time expansion, the strict schema (defaults applied,
 * durations in milliseconds), then consistency (unique stage names, known services and stages, no
 * cycle, every service deployed, related settings that agree). Throws
 * {@link PlanInvalidError} naming `source`, the path and the problem, or {@link BadInputError} for
 * bad options (a malformed version or `--var`).
 */
export function parsePlan(text: string, source: string, options: PlanLoadOptions = {}): Plan {
  checkOptions(options);
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: true, merge: true, uniqueKeys: true });
  const syntaxError = document.errors[0];
  if (syntaxError) {
    const position = syntaxError.linePos?.[0];
    const problem = syntaxError.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
    throw new PlanInvalidError(source, [
      {
        path: '',
        message: position ? `line ${position.line}, column ${position.col}: ${problem}` : problem,
        line: position?.line,
      },
    ]);
  }

  let raw: unknown;
  try {
    raw = document.toJS({ maxAliasCount: 1000 });
  } catch (error) {
    throw new PlanInvalidError(source, [{ path: '', message: describeCause(error) }]);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new PlanInvalidError(source, [
      { path: '', message: 'expected a mapping (project, services, stages, ...)' },
    ]);

  const expanded = expandLoadTimeValues(raw as Record<string, unknown>, options);
  const lineOf = (path: DocumentPath) => findLine(document, lineCounter, path);
  const located = (issues: PathIssue[]): PlanIssue[] =>
    sortByLine(
      issues.map((issue) => ({
        path: formatPath(issue.path),
        message: issue.message,
        line: lineOf(issue.path),
      })),
    );

  const parsed = planSchema.safeParse(expanded, { reportInput: true });
  if (!parsed.success)
    throw new PlanInvalidError(source, located(parsed.error.issues.flatMap(describeZodIssue)));

  const { vars, ...data } = parsed.data;
  const problems = [...reservedVarProblems(vars), ...checkConsistency(parsed.data)];
  if (problems.length > 0) throw new PlanInvalidError(source, located(problems));

  const services: Record<string, PlanService> = {};
  for (const [name, service] of Object.entries(data.services)) services[name] = { name, ...service };
  const plan: Omit<Plan, 'references'> = {
    source,
    baseDir: options.baseDir ?? process.cwd(),
    ...(options.version === undefined ? {} : { version: options.version }),
    ...(options.deploymentId === undefined ? {} : { deploymentId: options.deploymentId }),
    ...data,
    services,
  };
  return { ...plan, references: planReferences(plan) };
}

function checkOptions(options: PlanLoadOptions): void {
  if (options.version !== undefined && !VERSION_PATTERN.test(options.version))
    throw new BadInputError(
      `version ${JSON.stringify(options.version)} must match [A-Za-z0-9][A-Za-z0-9._-]* (at most 128 characters)`,
    );
  for (const name of Object.keys(options.vars ?? {})) {
    if (!VAR_NAME.test(name))
      throw new BadInputError(`--var ${JSON.stringify(name)}: the name must match [A-Za-z_][A-Za-z0-9_]*`);
    if (isReserved(name))
      throw new BadInputError(`--var ${name}: ${name} is set by materi and cannot be given as a --var`);
  }
}

function isReserved(name: string): boolean {
  return (RESERVED_VARIABLES as readonly string[]).includes(name);
}

/** The plan's `vars` may not set a name Materi sets itself, as a `--var` may not. */
function reservedVarProblems(vars: Record<string, unknown> | undefined): PathIssue[] {
  return Object.keys(vars ?? {})
    .filter(isReserved)
    .map((name) => ({ path: ['vars', name], message: `${name} is set by materi and cannot be a var` }));
}

/**
 * The plan's `vars` defaults that can be used, as strings. Invalid entries are left out here and
 * reported by the schema (or {@link reservedVarProblems}).
 */
function planVarDefaults(raw: Record<string, unknown>): Record<string, string> {
  const defaults: Record<string, string> = {};
  if (!isRecord(raw.vars)) return defaults;
  for (const [name, value] of Object.entries(raw.vars)) {
    if (!VAR_NAME.test(name) || isReserved(name)) continue;
    if (typeof value === 'string' || typeof value === 'number') defaults[name] = String(value);
  }
  return defaults;
}

/**
 * Expands `${VERSION}`, `${ENVIRONMENT}`, `${PROJECT}`, `${DEPLOYMENT_ID}` and the vars (`--var`
 * values, else the plan's `vars` defaults) everywhere, except `${VERSION}` inside
 * `stages[].provider` (the provider expands it with the version of each action). Every other
 * reference is kept for the process that uses it.
 */
function expandLoadTimeValues(
  raw: Record<string, unknown>,
  options: PlanLoadOptions,
): Record<string, unknown> {
  const values: Record<string, string> = { ...planVarDefaults(raw), ...options.vars };
  const environment =
    options.environment ?? (typeof raw.environment === 'string' ? raw.environment : 'production');
  values.ENVIRONMENT = environment;
  if (typeof raw.project === 'string') values.PROJECT = raw.project;
  if (options.deploymentId !== undefined) values.DEPLOYMENT_ID = options.deploymentId;
  const providerValues = { ...values };
  if (options.version !== undefined) values.VERSION = options.version;

  const stages = Array.isArray(raw.stages) ? raw.stages : undefined;
  const providers = stages?.map((stage) => (isRecord(stage) ? stage.provider : undefined));
  const withoutProviders = stages
    ? {
        ...raw,
        stages: stages.map((stage) =>
          isRecord(stage) && 'provider' in stage ? { ...stage, provider: null } : stage,
        ),
      }
    : raw;

  const expanded = expandReferences(withoutProviders, (name) => values[name], { missing: 'keep' });
  if (options.environment !== undefined) expanded.environment = options.environment;
  if (stages && providers) {
    (expanded.stages as unknown[]).forEach((stage, i) => {
      if (isRecord(stage) && 'provider' in stage)
        stage.provider = expandReferences(providers[i], (name) => providerValues[name], { missing: 'keep' });
    });
  }
  return expanded;
}

/** Names Materi fills in itself, by where they appear; they are not environment variables. */
function isBuiltIn(name: string, path: string): boolean {
  if (['VERSION', 'ENVIRONMENT', 'PROJECT', 'DEPLOYMENT_ID'].includes(name)) return true;
  const inProvider = /^stages\[\d+\]\.provider/.test(path);
  if (inProvider && (name === 'PREVIOUS_VERSION' || name === 'STAGE')) return true;
  return inProvider && (name === 'PORT' || name === 'HOOK_ID');
}

/** The environment variables a plan references, with the paths that use them. */
export function planReferences(plan: Pick<Plan, 'services' | 'stages' | 'validation'>): PlanReference[] {
  const found = new Map<string, string[]>();
  const visit = (value: unknown, path: string): void => {
    if (typeof value === 'string') {
      for (const name of findReferences(value)) {
        if (isBuiltIn(name, path)) continue;
        const paths = found.get(name) ?? [];
        if (!paths.includes(path)) paths.push(path);
        found.set(name, paths);
      }
    } else if (Array.isArray(value)) {
      value.forEach((item, i) => {
        visit(item, `${path}[${i}]`);
      });
    } else if (isRecord(value)) {
      for (const [key, item] of Object.entries(value))
        visit(
          item,
          /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`,
        );
    }
  };
  const services: Record<string, unknown> = {};
  for (const [name, { name: _name, ...service }] of Object.entries(plan.services)) services[name] = service;
  visit(services, 'services');
  plan.stages.forEach((stage, i) => {
    visit(stage, `stages[${i}]`);
  });
  visit(plan.validation, 'validation');
  return [...found.entries()]
    .map(([name, paths]) => ({ name, paths }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The line of the deepest node of `path` the document has (1-based). */
function findLine(document: Document, lineCounter: LineCounter, path: DocumentPath): number | undefined {
  for (let length = path.length; length >= 0; length--) {
    const node = length === 0 ? document.contents : document.getIn(path.slice(0, length) as unknown[], true);
    if (isNode(node) && node.range) return lineCounter.linePos(node.range[0]).line;
  }
  return undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

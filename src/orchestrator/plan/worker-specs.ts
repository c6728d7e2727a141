import { BadInputError } from '../../errors/index.js';
import { expandReferences } from '../../runtime/references.js';
import { VERSION_PATTERN } from './load.js';
import type { Plan, PlanService } from './types.js';

/**
 * Builders of the `spec` field of the `*:started` events: the part of the plan each worker needs,
 * in the shapes of notes/specs.md. Specs are plain JSON (no undefined values) so they fit a
 * google.protobuf.Struct, and secrets stay `${NAME}` references: a worker resolves them from its
 * own environment at the moment of use.
 *
 * @module
 */

type ServiceEnv = NonNullable<PlanService['env']>;
type ServiceDependency = PlanService['dependencies'][number];

/** The validator's input (`validation:started`). */
export interface ValidationSpec {
  /** Timeout of each check. */
  timeoutMs: number;
  images: {
    service: string;
    image: string;
    auth?: { username: string; password: string };
    insecure: boolean;
  }[];
  migrations: Plan['validation']['migrations'];
  env: { service: string; source: ServiceEnv['source']; required: string[] }[];
  discovery: Plan['validation']['discovery'];
}

/** The dependency checker's input (`dependency:check:started`). */
export interface DependencySpec {
  /** Timeout of each attempt; a dependency's own `timeoutMs` overrides it. */
  timeoutMs: number;
  retries: number;
  retryDelayMs: number;
  dependencies: (ServiceDependency & { service: string })[];
}

/** One service the health monitor probes. */
export interface HealthServiceSpec {
  name: string;
  health: string;
  ready?: string;
  metrics?: { url: string; series?: string[]; increasing?: string[] };
  promql?: NonNullable<PlanService['promql']>;
}

/** The health monitor's input (`health:check:started`). */
export interface HealthSpec {
  intervalMs: number;
  /** Length of the window: `health.duration` after a deploy, `health.bake` for the bake. */
  durationMs: number;
  requestTimeoutMs: number;
  thresholds: {
    errorRate: { degraded: number; unhealthy: number };
    p95Ms: { degraded: number; unhealthy: number };
  };
  noData: Plan['health']['noData'];
  services: HealthServiceSpec[];
}

/**
 * The validator's spec. `version` fills any `${VERSION}` still in the plan (a plan loaded without
 * a version); the plan's own version is used when it is not given.
 */
export function buildValidationSpec(plan: Plan, version: string | undefined = plan.version): ValidationSpec {
  const services = Object.values(plan.services);
  const registry = plan.validation.registry;
  const spec: ValidationSpec = {
    timeoutMs: plan.validation.checkTimeoutMs,
    images: plan.validation.images
      ? services
          .filter((service) => service.image !== undefined)
          .map((service) => ({
            service: service.name,
            image: service.image!,
            ...(registry?.auth ? { auth: registry.auth } : {}),
            insecure: registry?.insecure ?? false,
          }))
      : [],
    migrations: plan.validation.migrations,
    env: services
      .filter((service) => service.env !== undefined)
      .map((service) => ({
        service: service.name,
        source: service.env!.source,
        required: service.env!.required,
      })),
    discovery: plan.validation.discovery,
  };
  return withVersion(toJson(spec), version);
}

/** The dependency checker's spec: every service's dependencies, flattened, each naming its service. */
export function buildDependencySpec(plan: Plan): DependencySpec {
  const dependencies = Object.values(plan.services).flatMap((service) =>
    service.dependencies.map(({ name, type, ...rest }) => ({ name, service: service.name, type, ...rest })),
  );
  return withVersion(
    toJson({
      timeoutMs: plan.dependencies.checkTimeoutMs,
      retries: plan.dependencies.retries,
      retryDelayMs: plan.dependencies.retryDelayMs,
      dependencies: dependencies as DependencySpec['dependencies'],
    }),
    plan.version,
  );
}

/** Options of {@link buildHealthSpec}. */
export interface HealthSpecOptions {
  /** `post-deploy` watches for `health.duration`, `bake` for `health.bake`. @defaultValue post-deploy */
  purpose?: 'post-deploy' | 'bake';
  /** Only these services. @defaultValue every service with a `health` URL */
  services?: string[];
}

/** The health monitor's spec. Services without a `health` URL are not probed. */
export function buildHealthSpec(plan: Plan, options: HealthSpecOptions = {}): HealthSpec {
  const { health } = plan;
  const wanted = options.services ? new Set(options.services) : undefined;
  const services: HealthServiceSpec[] = Object.values(plan.services)
    .filter((service) => service.health !== undefined && (!wanted || wanted.has(service.name)))
    .map((service) => ({
      name: service.name,
      health: service.health!,
      ready: service.ready,
      metrics: service.metrics,
      promql: service.promql,
    }));
  return withVersion(
    toJson({
      intervalMs: health.intervalMs,
      durationMs: options.purpose === 'bake' ? health.bakeMs : health.durationMs,
      requestTimeoutMs: health.requestTimeoutMs,
      thresholds: {
        errorRate: { ...health.thresholds.errorRate },
        p95Ms: { ...health.thresholds.p95 },
      },
      noData: health.noData,
      services,
    }),
    plan.version,
  );
}

/** Drops undefined values (a Struct cannot hold them) and shares nothing with the plan. */
function toJson<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function withVersion<T>(spec: T, version: string | undefined): T {
  if (version === undefined) return spec;
  if (!VERSION_PATTERN.test(version))
    throw new BadInputError(`version ${JSON.stringify(version)} must match [A-Za-z0-9][A-Za-z0-9._-]*`);
  return expandReferences(spec, (name) => (name === 'VERSION' ? version : undefined), { missing: 'keep' });
}

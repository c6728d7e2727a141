/**
 * The dependency checker (`printery-dependency-checker`): before a deployment changes anything,
 * probes what the services depend on — HTTP endpoints, TCP ports, PostgreSQL, Redis, MySQL —
 * and says whether the deployment can go on.
 *
 * `runDependencyChecks` runs a `dependency:check:started` spec; `createDependencyCheckerHandler`
 * is the bus handler that publishes `dependency:check:completed`. New dependency types implement
 * {@link DependencyProbe} and are passed in `probes`.
 *
 * @module
 */
export {
  createDependencyCheckerHandler,
  DEPENDENCY_CHECKER_GROUP,
  DEPENDENCY_CHECKER_INPUT_TYPE,
} from './handler.js';
export {
  type DependencyProbe,
  type DependencySettings,
  defineDependencyProbe,
  dependencySettings,
  type ProbeContext,
  ProbeFailure,
  type ProbeVerdict,
} from './probe.js';
export {
  DEFAULT_DEPENDENCY_PROBES,
  httpProbe,
  mysqlProbe,
  postgresProbe,
  redisProbe,
  tcpProbe,
} from './probes/index.js';
export {
  type DependencyCheckerOptions,
  type DependencyOutcome,
  type DependencyStatusOutcome,
  type RunDependencyChecksOptions,
  runDependencyChecks,
} from './run.js';
export {
  DEFAULT_DEPENDENCY_RETRIES,
  DEFAULT_DEPENDENCY_RETRY_DELAY_MS,
  DEFAULT_DEPENDENCY_TIMEOUT_MS,
  dependencySpecSchema,
} from './spec.js';

/**
 * The validator (`printery-validator`): checks a deployment's prerequisites before anything is
 * deployed — images exist in their registries, database migrations are applied, required
 * environment variables are set, internal endpoints resolve and accept connections.
 *
 * `runValidation` runs a `validation:started` spec; `createValidatorHandler` is the bus handler
 * that publishes `validation:completed`. New kinds of checks implement {@link ValidationCheck}
 * and are passed in `checks`.
 *
 * @module
 */

export { resultEventId } from '../../events/ids.js';
export {
  type CheckContext,
  CheckFailure,
  type CheckItemSettings,
  type CheckVerdict,
  checkItemSettings,
  defineValidationCheck,
  type ValidationCheck,
} from './check.js';
export {
  DEFAULT_VALIDATION_CHECKS,
  discoveryCheck,
  envCheck,
  imageCheck,
  migrationsCheck,
} from './checks/index.js';
export { createValidatorHandler, VALIDATOR_GROUP, VALIDATOR_INPUT_TYPE } from './handler.js';
export {
  lookupManifest,
  MANIFEST_MEDIA_TYPES,
  type ManifestLookup,
  type ManifestLookupOptions,
  type RegistryCredentials,
  RegistryRequestError,
} from './registry/client.js';
export {
  DOCKER_HUB_REGISTRY,
  type ImageReference,
  isLoopbackRegistry,
  parseImageReference,
} from './registry/reference.js';
export {
  type RunValidationOptions,
  runValidation,
  type ValidationCheckOutcome,
  type ValidationOutcome,
  type ValidatorOptions,
} from './run.js';
export { DEFAULT_CHECK_TIMEOUT_MS, describeSpecIssue, validationSpecSchema } from './spec.js';
